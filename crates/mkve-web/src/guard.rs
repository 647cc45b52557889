//! The access checks before every route, as auth.rs's header says them:
//! the Host header when no login is asked, the Origin of a change or a
//! WebSocket, the session (or a redirect to the login page), the CSRF
//! token of a change. What passes carries its [`Caller`] in the request's
//! extensions.

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{
    cookie, from_browser, host_is_loopback, is_websocket, same_origin, Caller, Peer, CSRF_HEADER,
};
use crate::error::ApiError;
use crate::reply;
use crate::state::Shared;

/// A refusal: 403 and why, as text (pages) or JSON (the API).
fn refuse(api: bool, why: &str) -> Response {
    if api {
        ApiError::refusal(StatusCode::FORBIDDEN, why).into_response()
    } else {
        (StatusCode::FORBIDDEN, format!("{why}\n")).into_response()
    }
}

/// The access checks of auth.rs's header, before every route.
pub async fn guard(State(app): State<Shared>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let headers = req.headers();
    let api = path.starts_with("/api/");
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD);
    let ws = is_websocket(headers);
    let login = app.config.login;
    if !login && !host_is_loopback(headers) {
        return refuse(
            api,
            "mkve-web answers to localhost only here: open it as http://localhost:PORT",
        );
    }
    if (changes || ws) && same_origin(headers) == Some(false) {
        return refuse(api, "refused: the request comes from another site (Origin)");
    }
    if path.starts_with("/assets/") || path == "/login" {
        return next.run(req).await;
    }
    let caller = if login {
        match cookie(headers).and_then(|t| app.sessions.get(&t)) {
            Some((user, csrf)) => Caller {
                user,
                csrf,
                session: true,
            },
            None if changes || api || ws => return refuse(api, "log in first"),
            None => return reply::redirect(headers, "/login"),
        }
    } else {
        let peer = req
            .extensions()
            .get::<ConnectInfo<Peer>>()
            .map(|c| c.0.describe())
            .unwrap_or_else(|| "local".into());
        Caller {
            user: peer,
            csrf: app.sessions.local_csrf().to_string(),
            session: false,
        }
    };
    if changes && (login || from_browser(headers)) {
        let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if caller.csrf.is_empty() || given != Some(caller.csrf.as_str()) {
            return refuse(
                api,
                "refused: the CSRF token is missing or wrong (reload the page)",
            );
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}
