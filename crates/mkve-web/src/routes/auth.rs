//! Logging in and out: the login form, PAM and the group checked
//! (`auth.rs`, `pam.rs`), the session cookie set and cleared. Every try is
//! logged.

use axum::extract::connect_info::ConnectInfo;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::auth::{Peer, COOKIE, SESSION_HOURS};
use crate::reply;
use crate::state::Shared;
use crate::views;

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

/// GET /login: the form (with no login asked, the machines).
async fn login_page(State(app): State<Shared>) -> Response {
    if !app.config.login {
        return reply::redirect(&HeaderMap::new(), "/");
    }
    views::login(None).into_response()
}

/// POST /login: PAM, then the group; a session cookie and the machines
/// page, or the form again saying why not. Logged either way.
async fn login(
    State(app): State<Shared>,
    peer: Option<axum::Extension<ConnectInfo<Peer>>>,
    Form(f): Form<LoginForm>,
) -> Response {
    if !app.config.login {
        return reply::redirect(&HeaderMap::new(), "/");
    }
    let rhost = match peer.map(|p| (p.0).0) {
        Some(Peer::Tcp(a)) => a.ip().to_string(),
        _ => "localhost".into(),
    };
    let (user, password, group) = (f.user.clone(), f.password, app.config.group.clone());
    let checked = tokio::task::spawn_blocking(move || {
        crate::pam::authenticate(&user, &password, &rhost)?;
        crate::auth::may_log_in(&user, &group)
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let session = checked.and_then(|()| app.sessions.open(&f.user));
    let logged = session
        .as_ref()
        .err()
        .map(|e| mkve_core::Error::Other(format!("login refused: {e}")));
    app.log.record(&f.user, "login", logged.as_ref());
    match session {
        Ok(token) => {
            let secure = if app.config.tls { "; Secure" } else { "" };
            let cookie = format!(
                "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                SESSION_HOURS * 3600
            );
            (
                StatusCode::SEE_OTHER,
                [(header::SET_COOKIE, cookie), (header::LOCATION, "/".into())],
            )
                .into_response()
        }
        Err(_) => (StatusCode::FORBIDDEN, views::login(Some("login refused"))).into_response(),
    }
}

/// POST /logout: the session ends.
async fn logout(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(t) = crate::auth::cookie(&headers) {
        app.sessions.close(&t);
    }
    let mut r = reply::redirect(&headers, "/login");
    if let Ok(v) = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0").parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
