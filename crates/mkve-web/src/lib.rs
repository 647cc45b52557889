//! mkve-web(8): the web front-end of an mkve node. Pages rendered on the
//! server (maud) and updated in part by htmx: the machines (refreshing
//! themselves, with their actions), create from an uploaded bundle, a
//! machine's console (xterm.js over a WebSocket), the network, and the
//! log of every action; and a JSON API answering what `mkve-vm … --json`
//! prints. Every action is the same call into mkve-core the command line
//! makes, run on a blocking thread (libvirt and gpgme block).
//!
//! Its layers, each importing only the ones below it:
//!
//! - `cli.rs`: the command line; `server.rs`: listening, TLS, signals
//! - `routes/`: one router per resource, merged in `routes/mod.rs` behind
//!   the access checks (`guard.rs`); the handlers, returning `Result`
//! - `views/`: the HTML (maud only: values in, markup out)
//! - `create.rs`: the create flow the pages and the API share;
//!   `actions.rs`: start, stop, reboot, autostart, delete; `ganeti.rs`:
//!   a Ganeti cluster's instances and their actions (`engine=ganeti`)
//! - `snapshots.rs`: take, revert, delete a machine's snapshots;
//!   `upgrades.rs`: a machine's newer bundle, and its upgrade to it
//! - `state.rs`: the state every request shares, and the blocking thread
//!   core is called on
//! - `audits.rs`: each machine's open vulnerabilities (`--feed`);
//!   `backups.rs`: the last backup made here of each machine;
//!   `packs.rs`: a machine packed into a bundle, a domain adopted
//! - `uploads.rs`: uploads streamed to disk; `jobs.rs`: creates running;
//!   `signatures.rs`: what was checked of their bundles; `form.rs`: a
//!   create's form fields → `CreateOptions`; `network.rs`: mkve-net's view
//! - `auth.rs`: sessions, callers, the Host and Origin rules (`pam.rs`
//!   for the login); `log.rs`: the action log; `config.rs`: what it was
//!   started with
//! - `request.rs`: a request's query, form fields and path, read strictly;
//!   `reply.rs`: redirects and JSON; `error.rs`: failures → HTTP, by kind
//!
//! mkve-web starts no program itself; core's children (mkfs.ext4,
//! qemu-img) are short-lived, so none holds gpgme's pipes for long (see
//! sign.rs in mkve-core).

pub mod actions;
pub mod audits;
pub mod auth;
pub mod backups;
pub mod cli;
pub mod config;
pub mod create;
pub mod error;
mod files;
pub mod form;
#[doc(hidden)]
pub mod fuzzing;
pub mod ganeti;
pub mod guard;
pub mod jobs;
pub mod log;
pub mod network;
pub mod packs;
mod pam;
pub mod reply;
pub mod request;
pub mod routes;
pub mod server;
pub mod signatures;
pub mod snapshots;
pub mod state;
pub mod upgrades;
pub mod uploads;
pub mod views;

pub use config::Config;
pub use routes::router;
pub use state::{App, Shared};
