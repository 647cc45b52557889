//! Listening: on a Unix socket (mode 0600; a stale one left by a killed
//! run is replaced, a live one is not), on a TCP address, or on one with
//! TLS (rustls, the certificate and key given). SIGTERM or SIGINT ends it:
//! requests in flight get [`GRACE`] to finish.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use mkve_core::{Error, Result};
use tokio::net::{TcpListener, UnixListener};

use crate::auth::Peer;
use crate::cli::{Cli, Listen};
use crate::config::{uris_for, Config};
use crate::state::App;

/// How long requests in flight (a console, a create) may go on once asked
/// to stop.
pub const GRACE: Duration = Duration::from_secs(5);

/// TLS: the certificate chain and the key, PEM files.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Run mkve-web as the command line asks, until SIGTERM or SIGINT.
pub fn run(cli: Cli) -> Result<()> {
    let tls = match (cli.tls_cert, cli.tls_key) {
        (Some(cert), Some(key)) => Some(Tls { cert, key }),
        _ => None,
    };
    if tls.is_some() && matches!(cli.listen, Listen::Unix(_)) {
        return Err(Error::Usage(
            "--tls-cert: TLS is for an ADDR:PORT, not a Unix socket".into(),
        ));
    }
    let quiet = cli.verbosity.quiet;
    let login = !cli.listen.is_local();
    if login && tls.is_none() && !quiet {
        eprintln!(
            "{}: warning: {} is reached from other hosts without TLS: passwords and session cookies cross the network in clear (give --tls-cert and --tls-key)",
            mkve_cli::tool(),
            cli.listen
        );
    }
    let mut config = Config::new(uris_for(cli.connect.uri.as_deref())?);
    config.connect = cli.connect.uri;
    config.keyring = cli.keyring;
    config.login = login;
    config.group = cli.group;
    config.tls = tls.is_some();
    config.max_upload = cli.max_upload.0;
    config.quiet = quiet;
    config.verbose = cli.verbosity.verbose;
    // A feed that does not read is told now, before anything listens.
    if let Some(f) = &cli.feed {
        crate::audits::load_feed(f)?;
    }
    config.feed = cli.feed;
    config.publish_dir = cli.publish_dir;
    let dir = config.dir.clone();
    let app = App::new(config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mkve-web")
        .build()
        .map_err(|e| Error::Other(format!("cannot start the runtime: {e}")))?;
    // What killed runs left in uploads/ goes once the address is ours (not
    // before: a second server refused it must not touch the first's).
    let bound = move || crate::uploads::clear_uploads(&dir);
    rt.block_on(serve(
        crate::routes::router(app),
        &cli.listen,
        tls,
        quiet,
        bound,
    ))
}

fn unavailable(what: impl std::fmt::Display, e: std::io::Error) -> Error {
    Error::Unavailable {
        what: what.to_string(),
        why: e.to_string(),
    }
}

/// Resolves when SIGTERM or SIGINT comes.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Bind a Unix socket at `path`, mode 0600. A socket file nobody answers
/// on (a killed run's) is replaced. Errors: another server answers there
/// (69), the file cannot be made (73).
pub fn bind_unix(path: &Path) -> Result<UnixListener> {
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::Unavailable {
                what: path.display().to_string(),
                why: "another server listens there".into(),
            });
        }
        std::fs::remove_file(path).map_err(|e| Error::create(path, e))?;
    }
    // Made 0600 from the start: no moment when others may connect.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let l = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let l = l.map_err(|e| Error::create(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::create(path, e))?;
    Ok(l)
}

/// Serve `router` on `listen` until a stop signal, then give requests in
/// flight [`GRACE`]; `bound` runs once the address is taken.
pub async fn serve(
    router: Router,
    listen: &Listen,
    tls: Option<Tls>,
    quiet: bool,
    bound: impl FnOnce(),
) -> Result<()> {
    let mut bound = Some(bound);
    let mut say = |what: String| {
        if let Some(b) = bound.take() {
            b();
        }
        if !quiet {
            eprintln!("{}: listening on {what}", mkve_cli::tool());
        }
    };
    let stopping = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = stopping.clone();
    let signal = async move {
        stop_signal().await;
        notify.notify_waiters();
    };
    let grace = async {
        stopping.notified().await;
        tokio::time::sleep(GRACE).await;
    };
    match (listen, tls) {
        (Listen::Unix(path), _) => {
            let l = bind_unix(path)?;
            say(format!("unix:{}", path.display()));
            let server = axum::serve(l, router.into_make_service_with_connect_info::<Peer>())
                .with_graceful_shutdown(signal);
            let r = tokio::select! {
                r = server => r.map_err(|e| unavailable(path.display(), e)),
                _ = grace => Ok(()),
            };
            let _ = std::fs::remove_file(path);
            r
        }
        (Listen::Tcp(addr), None) => {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| unavailable(addr, e))?;
            let at = l.local_addr().map_err(|e| unavailable(addr, e))?;
            say(format!("http://{at}/"));
            let server = axum::serve(l, router.into_make_service_with_connect_info::<Peer>())
                .with_graceful_shutdown(signal);
            tokio::select! {
                r = server => r.map_err(|e| unavailable(addr, e)),
                _ = grace => Ok(()),
            }
        }
        (Listen::Tcp(addr), Some(tls)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .map_err(|e| {
                    Error::InvalidConfig(mkve_core::error::Problem::new(
                        &tls.cert,
                        None,
                        format!("with {}: {e}", tls.key.display()),
                    ))
                })?;
            let l = std::net::TcpListener::bind(addr).map_err(|e| unavailable(addr, e))?;
            l.set_nonblocking(true).map_err(|e| unavailable(addr, e))?;
            let at = l.local_addr().map_err(|e| unavailable(addr, e))?;
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                signal.await;
                h.graceful_shutdown(Some(GRACE));
            });
            say(format!("https://{at}/"));
            axum_server::from_tcp_rustls(l, config)
                .handle(handle)
                .serve(router.into_make_service_with_connect_info::<Peer>())
                .await
                .map_err(|e| unavailable(addr, e))
        }
    }
}
