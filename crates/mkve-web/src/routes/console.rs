//! A machine's console in the browser: a WebSocket bridged to the libvirt
//! console stream `mkve-vm console` uses (`vm::open_console`), shown by
//! xterm.js (the page of `views/console.rs`, and mkve.js). Binary messages
//! carry the bytes both ways; the stream's blocking reads run on a thread
//! of their own, its writes on tokio's blocking threads. When either side
//! ends, so does the other, and the console is free for the next client (a
//! page reloaded). A console another client holds is told as busy: only
//! the qemu driver could take it (`--force`), the lxc driver refuses the
//! flag.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use maud::Markup;
use mkve_core::console::Console;
use mkve_core::vm;

use crate::auth::Caller;
use crate::error::TextError;
use crate::state::{blocking, Shared};

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/machines/{id}/console", get(page))
        .route("/machines/{id}/console/ws", get(ws))
}

/// GET /machines/ID/console: the terminal page.
async fn page(c: Caller, Path(id): Path<String>) -> Markup {
    crate::views::console::console(&c, &id)
}

/// GET /machines/ID/console/ws: the WebSocket (its Origin was checked by
/// auth.rs). The console is opened before the upgrade is accepted, so a
/// machine that is not running is told as the CLI tells it (69 → 503).
async fn ws(
    State(app): State<Shared>,
    c: Caller,
    Path(id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, TextError> {
    let uris = app.config.uris.clone();
    let target = id.clone();
    let con = app
        .act(&c.user, format!("console {id}"), move || {
            vm::open_console(&uris, &target, false).map(|(_, con)| con)
        })
        .await?;
    Ok(upgrade.on_upgrade(move |socket| bridge(socket, con)))
}

/// Copy between the socket and the console until either ends.
async fn bridge(socket: WebSocket, con: Console) {
    let (mut to_browser, mut from_browser) = socket.split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let reader = con.clone();
    // The stream's reads block until the guest writes: a thread of its own.
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 << 10];
        while let Ok(n) = reader.recv(&mut buf) {
            if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let out = async {
        while let Some(bytes) = rx.recv().await {
            if to_browser
                .send(Message::Binary(bytes.into()))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = to_browser.close().await;
    };
    let writer = con.clone();
    let input = async {
        // What arrives within BATCH of the first message goes to the guest
        // in one write: xterm.js sends a key per message, and a line typed
        // fast or pasted then crosses libvirt once. Keys typed slowly at a
        // prompt that echoes nothing (a password) go one by one, while the
        // reading thread waits in recv (tests/web-browser.py types one so).
        const BATCH: std::time::Duration = std::time::Duration::from_millis(60);
        // The bytes of a message; `None` when the browser closed.
        fn bytes_of(msg: Message) -> Option<Vec<u8>> {
            match msg {
                Message::Binary(b) => Some(b.to_vec()),
                Message::Text(t) => Some(t.as_bytes().to_vec()),
                Message::Close(_) => None,
                _ => Some(Vec::new()),
            }
        }
        let mut ended = false;
        while !ended {
            let Some(Ok(first)) = from_browser.next().await else {
                break;
            };
            let mut bytes = Vec::new();
            match bytes_of(first) {
                Some(b) => bytes.extend(b),
                None => ended = true,
            }
            let until = tokio::time::Instant::now() + BATCH;
            while !ended {
                match tokio::time::timeout_at(until, from_browser.next()).await {
                    Ok(Some(Ok(msg))) => match bytes_of(msg) {
                        Some(b) => bytes.extend(b),
                        None => ended = true,
                    },
                    Ok(_) => ended = true,
                    Err(_) => break,
                }
            }
            if bytes.is_empty() {
                continue;
            }
            let w = writer.clone();
            if blocking(move || w.send(&bytes)).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = out => {}
        _ = input => {}
    }
    // Ends the reading thread's recv, and the console for libvirt.
    con.close();
}
