//! mkve-web(8): the web front-end of an mkve node. Pages rendered on the
//! server (maud) and updated in part by htmx: the machines (refreshing
//! themselves, with their actions), create from an uploaded bundle, a
//! machine's console (xterm.js over a WebSocket), the network, and the
//! log of every action; and a JSON API answering what `mkve-vm … --json`
//! prints. Every action is the same call into mkve-core the command line
//! makes, run on a blocking thread (libvirt and gpgme block).
//!
//! - `cli.rs`: the command line; `server.rs`: listening, TLS, signals
//! - `app.rs`: configuration, shared state, the router, errors → HTTP
//! - `auth.rs`: login (with `pam.rs`), sessions, CSRF, Origin and Host
//! - `pages.rs`: the HTML; `api.rs`: the JSON; `assets.rs`: static files
//! - `request.rs`: a request's query, form fields and path, read strictly
//! - `actions.rs`: start, stop, reboot, autostart, delete
//! - `create.rs`: uploads streamed to disk, the create options, jobs
//! - `console.rs`: the console's WebSocket; `log.rs`: the action log
//!
//! mkve-web starts no program itself; core's children (mkfs.ext4,
//! qemu-img) are short-lived, so none holds gpgme's pipes for long (see
//! sign.rs in mkve-core).

pub mod actions;
pub mod api;
pub mod app;
pub mod assets;
pub mod auth;
pub mod cli;
pub mod console;
pub mod create;
mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod ganeti;
pub mod log;
pub mod pages;
mod pam;
pub mod request;
pub mod server;

pub use app::{router, App, Config};
