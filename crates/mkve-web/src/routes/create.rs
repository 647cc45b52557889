//! Create from the pages: the upload form (`/create`), the bundle streamed
//! and read (POST), its options (`/create/TOKEN`), the create started as a
//! job, and the job's progress (`/jobs/N`). The flow itself is
//! `create.rs`'s, shared with the API.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;
use mkve_core::report::Report;
use mkve_core::Error;

use crate::auth::Caller;
use crate::create::{read_upload, run_create, take_form};
use crate::error::{ApiError, TextError};
use crate::form::Fields;
use crate::state::Shared;
use crate::views;

pub fn router() -> Router<Shared> {
    let uploads = Router::new()
        .route("/create", post(upload_page))
        // Uploads are streamed to disk under their own cap (uploads.rs).
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/create", get(form_page))
        .route("/create/{token}", get(options_page).post(start_job))
        .route("/jobs/{job}", get(job_page))
        .route("/jobs/{job}/status", get(job_status))
        .merge(uploads)
}

/// GET /create: the upload form.
async fn form_page(State(app): State<Shared>, c: Caller) -> Markup {
    views::create::create_form(&c, app.config.max_upload)
}

/// The bundle of a POST /create, streamed to disk and read, kept for its
/// options page: its token. Errors: those of the form and of the bundle;
/// with options given alongside (they come on the next page), 400.
async fn upload(app: &Shared, user: &str, mp: Multipart) -> Result<String, ApiError> {
    let (inc, fields) = take_form(app, user, mp).await?;
    if let Some((name, _)) = fields.first() {
        return Err(ApiError::refusal(
            StatusCode::BAD_REQUEST,
            format!("the field {name} is given with the bundle: its options come on the next page"),
        ));
    }
    let u = read_upload(app, user, inc).await?;
    let token = crate::auth::random_hex(16).map_err(|e| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        exit: mkve_core::error::exit::FAILURE,
        message: e,
    })?;
    if let Ok(mut m) = app.uploads.lock() {
        m.insert(token.clone(), u);
    }
    Ok(token)
}

/// POST /create: the bundle, streamed to disk and read; then its options
/// page (`/create/TOKEN`), or why it was refused: for htmx the message
/// alone, else a page.
async fn upload_page(
    State(app): State<Shared>,
    c: Caller,
    headers: HeaderMap,
    mp: Multipart,
) -> Response {
    match upload(&app, &c.user, mp).await {
        Ok(token) => crate::reply::redirect(&headers, &format!("/create/{token}")),
        Err(f) if headers.contains_key("hx-request") => {
            (f.status, views::error(&f.message)).into_response()
        }
        Err(f) => (
            f.status,
            views::refused(&c, "The bundle was refused", &f.message),
        )
            .into_response(),
    }
}

/// GET /create/TOKEN: what the bundle is, and the options that suit it.
async fn options_page(State(app): State<Shared>, c: Caller, Path(token): Path<String>) -> Response {
    let m = match app.uploads.lock() {
        Ok(m) => m,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    match m.get(&token) {
        Some(u) => views::create::options_form(&c, &token, u).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            views::refused(
                &c,
                "No such upload",
                "it was used or has expired: upload the bundle again",
            ),
        )
            .into_response(),
    }
}

/// POST /create/TOKEN: start the create; its job's page.
async fn start_job(
    State(app): State<Shared>,
    c: Caller,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, TextError> {
    // Read as bytes, as the API's fields are: create_options checks them.
    let fields: Fields = crate::request::pairs(&body)
        .into_iter()
        .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
        .collect();
    let upload = app
        .uploads
        .lock()
        .ok()
        .and_then(|mut m| m.remove(&token))
        .ok_or_else(|| Error::NotFound("no such upload: upload the bundle again".into()))?;
    let (n, job) = app
        .jobs
        .add(format!("create {}", upload.name), app.config.verbose);
    let app2 = app.clone();
    let user = c.user.clone();
    tokio::spawn(async move {
        let report: Arc<dyn Report + Send + Sync> = job.clone();
        let r = run_create(&app2, &user, upload, fields, report)
            .await
            .map_err(|f| f.message);
        if let Ok(mut d) = job.done.lock() {
            *d = Some(r);
        }
    });
    Ok(crate::reply::redirect(&headers, &format!("/jobs/{n}")))
}

fn no_job() -> Error {
    Error::NotFound("no such job".into())
}

/// GET /jobs/N: a create's progress, refreshed until it ends.
async fn job_page(
    State(app): State<Shared>,
    c: Caller,
    Path(n): Path<u64>,
) -> Result<Markup, TextError> {
    let j = app.jobs.get(n).ok_or_else(no_job)?;
    Ok(views::create::job(&c, n, &j))
}

/// GET /jobs/N/status: the job's progress as a fragment.
async fn job_status(State(app): State<Shared>, Path(n): Path<u64>) -> Result<Markup, TextError> {
    let j = app.jobs.get(n).ok_or_else(no_job)?;
    Ok(views::create::job_status(n, &j))
}
