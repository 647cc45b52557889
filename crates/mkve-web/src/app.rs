//! The application: its configuration, the state every request shares
//! (sessions, the action log, uploads, create jobs), the router, and the
//! one way an action reaches core ([`App::act`]: in a blocking thread,
//! logged with its user and result).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use mkve_core::vm::{self, Uris};
use mkve_core::{Error, Result};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::log::ActionLog;

/// What mkve-web was started with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where machines are looked for (`-c`, else every hypervisor's
    /// default URI).
    pub uris: Uris,
    /// `-c`: the URI creates and the network use, when given.
    pub connect: Option<String>,
    /// Keyring bundles are verified against; `None`: `$MKVE_CONFDIR/trusted.gpg`.
    pub keyring: Option<PathBuf>,
    /// Whether a login is asked (listening on an address that is not
    /// loopback).
    pub login: bool,
    /// Members of this group may log in, and root.
    pub group: String,
    /// Served over TLS: cookies are `Secure`.
    pub tls: bool,
    /// The largest upload, in bytes.
    pub max_upload: u64,
    /// Where uploads and the action log live (`$MKVE_STATEDIR/web`).
    pub dir: PathBuf,
    /// Nothing but errors on stderr (`-q`).
    pub quiet: bool,
    /// What creates give libvirt, and the programs' output, on stderr (`-v`).
    pub verbose: bool,
}

impl Config {
    /// A configuration for `uris`, with mkve's defaults: no login, no
    /// TLS, group `mkve`, uploads up to 16 GiB, files in
    /// `$MKVE_STATEDIR/web`.
    pub fn new(uris: Uris) -> Config {
        Config {
            uris,
            connect: None,
            keyring: None,
            login: false,
            group: "mkve".into(),
            tls: false,
            max_upload: 16 << 30,
            dir: mkve_core::paths::statedir().join("web"),
            quiet: true,
            verbose: false,
        }
    }
}

/// The state every request shares.
pub struct App {
    pub config: Config,
    pub sessions: crate::auth::Sessions,
    pub log: ActionLog,
    pub uploads: Mutex<HashMap<String, crate::create::Upload>>,
    pub jobs: crate::create::Jobs,
    /// Signature states of the bundles machines were made from here, by
    /// ID and bundle digest (see `create::Signatures`).
    pub signatures: crate::create::Signatures,
    /// The probes last run for each machine (its page runs them), with
    /// when: the machines page shows them.
    pub probes: Mutex<HashMap<u32, (String, Vec<mkve_core::probe::Outcome>)>>,
}

pub type Shared = Arc<App>;

impl App {
    /// The application state: the log is read back from `config.dir`,
    /// which is made (mode 0700) if need be. Errors: the directory cannot
    /// be made (73).
    pub fn new(config: Config) -> Result<Shared> {
        crate::files::private_dir(&config.dir)?;
        let log = ActionLog::open(&config.dir.join("actions.log"), config.quiet)?;
        let signatures = crate::create::Signatures::open(&config.dir.join("signatures.json"));
        Ok(Arc::new(App {
            sessions: crate::auth::Sessions::new(),
            log,
            uploads: Mutex::new(HashMap::new()),
            jobs: crate::create::Jobs::default(),
            signatures,
            probes: Mutex::new(HashMap::new()),
            config,
        }))
    }

    /// Run `f` (a call into core, which blocks) on a blocking thread, and
    /// log it as `what`, done by `user`: its result, and the error as the
    /// CLI words it.
    pub async fn act<T, F>(&self, user: &str, what: String, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let r = blocking(f).await;
        self.log.record(user, &what, r.as_ref().err());
        r
    }
}

/// Run `f` on tokio's blocking threads (libvirt and gpgme block).
pub async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Other(format!("the work failed: {e}"))))
}

/// A failure as an HTTP status, for the API and the pages: usage 400 (a
/// machine that is not there 404), data 422, unavailable 503, an output
/// that cannot be made 507, the rest 500.
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        // core's words for a machine not found (vm::find).
        Error::Usage(m) if m.starts_with("no machine ") => StatusCode::NOT_FOUND,
        _ => match e.exit_code() {
            2 => StatusCode::BAD_REQUEST,
            65 => StatusCode::UNPROCESSABLE_ENTITY,
            69 => StatusCode::SERVICE_UNAVAILABLE,
            73 => StatusCode::INSUFFICIENT_STORAGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
    }
}

/// A failure for the API: `{"error": MESSAGE, "exit": STATUS}` with the
/// HTTP status of [`status_of`]; MESSAGE is what the CLI prints after
/// `mkve-vm: `, STATUS its exit status.
pub struct ApiError(pub Error);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.0.to_string(), "exit": self.0.exit_code() });
        (status_of(&self.0), axum::Json(body)).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError(e)
    }
}

/// The JSON text of `v` as `mkve-vm … --json` prints it (a final newline
/// included).
pub fn json_response(v: &impl serde::Serialize) -> Response {
    match mkve_cli::json_text(v) {
        Ok(mut text) => {
            text.push('\n');
            ([(header::CONTENT_TYPE, "application/json")], text).into_response()
        }
        Err(e) => ApiError(e).into_response(),
    }
}

/// Every route, behind the access checks (auth.rs).
pub fn router(app: Shared) -> Router {
    use crate::{api, console, create, pages};
    let uploads = Router::new()
        .route("/create", post(create::upload_page))
        .route("/api/machines", post(api::create))
        // Uploads are streamed to disk under their own cap (create.rs).
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/", get(pages::machines))
        .route("/machines/table", get(pages::machines_table))
        .route("/machines/{id}", get(pages::machine))
        .route("/machines/{id}/console", get(console::page))
        .route("/machines/{id}/console/ws", get(console::ws))
        .route("/machines/{id}/delete", post(pages::delete))
        .route("/machines/{id}/{action}", post(pages::action))
        .route("/create", get(create::form_page))
        .route(
            "/create/{token}",
            get(create::options_page).post(create::start_job),
        )
        .route("/jobs/{job}", get(create::job_page))
        .route("/jobs/{job}/status", get(create::job_status))
        .route("/network", get(pages::network))
        .route("/log", get(pages::log))
        .route(
            "/login",
            get(crate::auth::login_page).post(crate::auth::login),
        )
        .route("/logout", post(crate::auth::logout))
        .route("/assets/{name}", get(crate::assets::serve))
        .route("/api/session", get(api::session))
        .route("/api/machines", get(api::list))
        .route("/api/machines/{id}", get(api::info).delete(api::delete))
        .route("/api/machines/{id}/{action}", post(api::action))
        .route("/api/network", get(api::network))
        .route("/api/log", get(api::log))
        .route("/ganeti", get(crate::ganeti::page))
        .route("/api/ganeti/instances", get(crate::ganeti::list))
        .route(
            "/api/ganeti/instances/{name}",
            get(crate::ganeti::info).delete(crate::ganeti::delete),
        )
        .route(
            "/api/ganeti/instances/{name}/{action}",
            post(crate::ganeti::action),
        )
        .merge(uploads)
        // What no route takes: the API's JSON error under /api/.
        .fallback(crate::request::fallback)
        .method_not_allowed_fallback(crate::request::method_not_allowed)
        .layer(axum::middleware::map_response(printable_body))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::auth::guard,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                 connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
            ),
        ))
        .with_state(app)
}

/// Every page and every JSON answer, whatever made it, with the control
/// characters that came from a guest, a bundle or a node escaped
/// (`mkve_core::text`): HTML as the CLI prints text, JSON with JSON's own
/// escapes (the exact value kept). The pages' own markup has none, so this
/// changes only what came from outside. Other bodies (assets, the
/// console's WebSocket) pass as they are.
async fn printable_body(resp: Response) -> Response {
    let kind = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (html, json) = (
        kind.starts_with("text/html"),
        kind.starts_with("application/json"),
    );
    if !html && !json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // Pages and answers are built whole in memory: no limit is reached.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let text = match String::from_utf8(bytes.to_vec()) {
        Ok(t) => t,
        Err(_) => return Response::from_parts(parts, axum::body::Body::from(bytes)),
    };
    let text = if json {
        mkve_core::text::json_safe(text)
    } else {
        mkve_core::text::printable(&text).into_owned()
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(text))
}

/// The machines, as `mkve-vm list` finds them.
pub fn uris(app: &App) -> Uris {
    app.config.uris.clone()
}

/// `vm::uris` for `-c`, as the CLI makes them. Errors: mkve.conf is
/// unsound (65), as for the CLI.
pub fn uris_for(connect: Option<&str>) -> Result<Uris> {
    vm::uris(connect)
}
