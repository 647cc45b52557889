//! The HTML, as maud functions of the values they show: no request, no
//! state, no call into core. Each page is the layout (the navigation, the
//! CSRF token for htmx, mkve's script and style) around its body; a
//! fragment htmx swaps in is a function of its own.
//!
//! - `machines.rs`: the machines' table, one machine, their actions;
//!   `snapshots.rs`, `backups.rs`: a machine's snapshots and backups;
//!   `audit.rs`: vulnerabilities (`--feed`)
//! - `create.rs`: the upload form, a bundle's options, a create's progress
//! - `network.rs`, `log.rs`, `console.rs`, `ganeti.rs`: those pages

use maud::{html, Markup, DOCTYPE};
use mkve_core::vm::MachineState;

use crate::auth::Caller;

pub mod audit;
pub mod backups;
pub mod console;
pub mod create;
pub mod ganeti;
pub mod log;
pub mod machines;
pub mod network;
pub mod pack;
pub mod snapshots;
pub mod upgrade;

fn layout(c: Option<&Caller>, here: &str, title: &str, body: Markup) -> Markup {
    let headers = c
        .map(|c| serde_json::json!({ "X-CSRF-Token": c.csrf }).to_string())
        .unwrap_or_else(|| "{}".into());
    let nav = [
        ("/", "Machines"),
        ("/create", "Create"),
        ("/network", "Network"),
        ("/log", "Log"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — mkve" }
                link rel="stylesheet" href="/assets/mkve.css";
                script src="/assets/htmx.min.js" {}
            }
            body hx-headers=(headers) {
                header {
                    strong { "mkve" }
                    @if let Some(c) = c {
                        @for (href, name) in nav {
                            a href=(href) class=[(here == href).then_some("here")] { (name) }
                        }
                        span.who {
                            (c.user)
                            @if c.session {
                                " "
                                form hx-post="/logout" { button type="submit" { "log out" } }
                            }
                        }
                    }
                }
                main { (body) }
                script src="/assets/mkve.js" {}
            }
        }
    }
}

/// A page for `c`: `here` is the navigation's current entry.
pub fn page(c: &Caller, here: &str, title: &str, body: Markup) -> Markup {
    layout(Some(c), here, title, body)
}

/// The login form, and why the last try was refused.
pub fn login(msg: Option<&str>) -> Markup {
    layout(
        None,
        "",
        "Log in",
        html! {
            h1 { "Log in" }
            @if let Some(m) = msg { p.error { (m) } }
            form.options method="post" action="/login" {
                label { "User " input type="text" name="user" autocomplete="username" required autofocus; }
                label { "Password " input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "log in" }
            }
        },
    )
}

/// A full page saying why something was refused.
pub fn refused(c: &Caller, title: &str, msg: &str) -> Markup {
    layout(
        Some(c),
        "",
        title,
        html! { h1 { (title) } (error(msg)) p { a href="/" { "Machines" } } },
    )
}

/// A failure, in the CLI's words.
pub fn error(msg: &str) -> Markup {
    html! { div.error role="alert" { (msg) } }
}

pub fn state_class(s: MachineState) -> &'static str {
    match s {
        MachineState::Running => "running",
        MachineState::ShutOff => "shut-off",
        MachineState::Orphan => "orphan",
    }
}
