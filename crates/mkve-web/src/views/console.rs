//! A machine's console: the terminal page (`routes/console.rs` bridges
//! the socket; xterm.js and mkve.js draw it).

use maud::{html, Markup};

use super::page;
use crate::auth::Caller;

/// The console page (console.rs bridges the socket).
pub fn console(c: &Caller, id: &str) -> Markup {
    page(
        c,
        "",
        &format!("Console of machine {id}"),
        html! {
            link rel="stylesheet" href="/assets/xterm.css";
            h1 { "Console of machine " a href=(format!("/machines/{id}")) { (id) } }
            p { "State: " span #console-state { "connecting…" } }
            div #terminal data-ws=(format!("/machines/{id}/console/ws")) {}
            script src="/assets/xterm.js" {}
        },
    )
}
