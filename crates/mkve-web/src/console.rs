//! A machine's console in the browser: a WebSocket bridged to the libvirt
//! console stream `mkve-vm console` uses (`vm::open_console`), shown by
//! xterm.js (console.html and mkve.js). Binary messages carry the bytes
//! both ways; the stream's blocking reads run on a thread of their own,
//! its writes on tokio's blocking threads. When either side ends, so does
//! the other, and the console is free for the next client (a page
//! reloaded). A console another client holds is told as busy: only the
//! qemu driver could take it (`--force`), the lxc driver refuses the flag.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use futures_util::{SinkExt, StreamExt};
use mkve_core::console::Console;
use mkve_core::vm;

use crate::app::{blocking, Shared};
use crate::auth::Caller;

/// GET /machines/ID/console: the terminal page.
pub async fn page(Extension(c): Extension<Caller>, Path(id): Path<String>) -> Response {
    Html(crate::pages::console(&c, &id).into_string()).into_response()
}

/// GET /machines/ID/console/ws: the WebSocket (its Origin was checked by
/// auth.rs). The console is opened before the upgrade is accepted, so a
/// machine that is not running is told as the CLI tells it (69 → 503).
pub async fn ws(
    State(app): State<Shared>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let uris = app.config.uris.clone();
    let target = id.clone();
    let opened = app
        .act(&c.user, format!("console {id}"), move || {
            vm::open_console(&uris, &target, false).map(|(_, con)| con)
        })
        .await;
    match opened {
        Ok(con) => upgrade.on_upgrade(move |socket| bridge(socket, con)),
        Err(e) => (crate::app::status_of(&e), format!("{e}\n")).into_response(),
    }
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
        while let Some(Ok(msg)) = from_browser.next().await {
            let bytes: Vec<u8> = match msg {
                Message::Binary(b) => b.to_vec(),
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
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
