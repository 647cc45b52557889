//! Who may do what, checked before any route runs (`guard.rs`):
//!
//! - Listening locally (a Unix socket, a loopback address), no login is
//!   asked: whoever reaches the socket is the node's operator. The Host
//!   header must then name the loopback (`localhost`, `127.0.0.1`,
//!   `[::1]`, any port), so a page elsewhere cannot reach mkve-web by
//!   re-binding its own name to 127.0.0.1.
//! - On any other address a login is asked (PAM, see pam.rs; root and the
//!   members of `--group`) and a session cookie (HttpOnly, SameSite=Strict,
//!   Secure over TLS) carries it for [`SESSION_HOURS`].
//! - Every change (a method other than GET or HEAD) from a browser must
//!   come from mkve-web's own pages: an Origin header naming another site
//!   is refused, and so is a request without the CSRF token of the
//!   session (or, locally, of the process) in `X-CSRF-Token`. With a
//!   login, the token is asked of every client; locally, a client that is
//!   no browser (no Origin, no Sec-Fetch-Site: `curl` on the socket) needs
//!   none, there being no cookie or page it could be tricked through.
//! - A WebSocket upgrade (the console) from another Origin is refused.
//!
//! Refusals are 403, with one line saying why.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::connect_info::Connected;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};

/// How long a login lasts.
pub const SESSION_HOURS: u64 = 12;
/// The session cookie's name.
pub const COOKIE: &str = "mkve_session";
/// The header a change carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who a request comes from, as far as the connection tells.
#[derive(Debug, Clone)]
pub enum Peer {
    /// A Unix socket client, by its user ID (SO_PEERCRED).
    Unix(Option<u32>),
    Tcp(SocketAddr),
}

impl Peer {
    pub fn describe(&self) -> String {
        match self {
            Peer::Unix(Some(uid)) => {
                let name = nix::unistd::User::from_uid((*uid).into())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_else(|| format!("uid {uid}"));
                format!("{name} (unix socket)")
            }
            Peer::Unix(None) => "(unix socket)".into(),
            Peer::Tcp(a) => a.ip().to_string(),
        }
    }
}

impl Connected<axum::serve::IncomingStream<'_, tokio::net::UnixListener>> for Peer {
    fn connect_info(s: axum::serve::IncomingStream<'_, tokio::net::UnixListener>) -> Peer {
        Peer::Unix(s.io().peer_cred().ok().map(|c| c.uid()))
    }
}

impl Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(s: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Peer {
        Peer::Tcp(*s.remote_addr())
    }
}

impl Connected<SocketAddr> for Peer {
    fn connect_info(a: SocketAddr) -> Peer {
        Peer::Tcp(a)
    }
}

/// The caller of a request that passed the guard (`guard.rs`): who (for
/// the log) and the CSRF token its pages carry. A handler takes it as an
/// extractor; on a route the guard let through without one (`/login`,
/// `/assets/`), asking for it is refused with a 500 that says so.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub csrf: String,
    /// Logged in (a logout button is shown).
    pub session: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "no caller: the access checks did not run for this route\n",
        ))
    }
}

struct Session {
    user: String,
    csrf: String,
    until: Instant,
}

/// The sessions of logged-in users, and the process's own CSRF token for
/// when no login is asked.
pub struct Sessions {
    local_csrf: String,
    by_token: Mutex<HashMap<String, Session>>,
}

/// `n` random bytes, as hex. Errors: the kernel gives no randomness.
pub fn random_hex(n: usize) -> Result<String, String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| format!("no random bytes: {e}"))?;
    Ok(mkve_core::digest::hex(&b))
}

impl Default for Sessions {
    fn default() -> Sessions {
        Sessions::new()
    }
}

impl Sessions {
    pub fn new() -> Sessions {
        Sessions {
            // With no randomness there is no token to match: every change
            // from a browser is refused, which is safe.
            local_csrf: random_hex(32).unwrap_or_default(),
            by_token: Mutex::new(HashMap::new()),
        }
    }

    /// A new session for `user`: its cookie token.
    pub fn open(&self, user: &str) -> Result<String, String> {
        let token = random_hex(32)?;
        let csrf = random_hex(32)?;
        let mut m = self.by_token.lock().map_err(|_| "sessions poisoned")?;
        let now = Instant::now();
        m.retain(|_, s| s.until > now);
        m.insert(
            token.clone(),
            Session {
                user: user.to_string(),
                csrf,
                until: now + Duration::from_secs(SESSION_HOURS * 3600),
            },
        );
        Ok(token)
    }

    pub fn close(&self, token: &str) {
        if let Ok(mut m) = self.by_token.lock() {
            m.remove(token);
        }
    }

    /// The process's own CSRF token, for when no login is asked (empty
    /// when the kernel gave no randomness: nothing matches it).
    pub fn local_csrf(&self) -> &str {
        &self.local_csrf
    }

    /// The user and CSRF token of a live session.
    pub fn get(&self, token: &str) -> Option<(String, String)> {
        let m = self.by_token.lock().ok()?;
        m.get(token)
            .filter(|s| s.until > Instant::now())
            .map(|s| (s.user.clone(), s.csrf.clone()))
    }
}

/// The session token in the Cookie headers, if any.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .map(str::to_string)
        .next()
}

/// The host part of a Host header or an origin's authority, lower case,
/// without the port.
fn host_name(authority: &str) -> String {
    let a = authority.to_ascii_lowercase();
    if let Some(rest) = a.strip_prefix('[') {
        return format!("[{}]", rest.split(']').next().unwrap_or(""));
    }
    a.split(':').next().unwrap_or("").to_string()
}

/// Whether the Host header (absent: not a browser) names the loopback.
pub fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(h) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return true;
    };
    matches!(
        host_name(h).as_str(),
        "localhost" | "127.0.0.1" | "[::1]" | "localhost."
    )
}

/// Whether the Origin header, when there is one, is this site's (the
/// Host the request was sent to). `None`: no Origin.
pub fn same_origin(headers: &HeaderMap) -> Option<bool> {
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or("");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    Some(authority.is_some_and(|a| !host.is_empty() && a.eq_ignore_ascii_case(host)))
}

/// Whether the request comes from a browser: it tells its Origin or its
/// fetch metadata.
pub fn from_browser(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN) || headers.contains_key("sec-fetch-site")
}

pub fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Whether `user` may use mkve-web: root, or a member of `group`.
pub fn may_log_in(user: &str, group: &str) -> Result<(), String> {
    use nix::unistd::{getgrouplist, Group, User};
    let u = User::from_name(user).ok().flatten().ok_or("no such user")?;
    if u.uid.is_root() {
        return Ok(());
    }
    let g = Group::from_name(group)
        .ok()
        .flatten()
        .ok_or_else(|| format!("{user} is not root, and there is no group {group}"))?;
    let name = std::ffi::CString::new(user).map_err(|_| "bad user name")?;
    let groups = getgrouplist(&name, u.gid).map_err(|e| format!("groups of {user}: {e}"))?;
    if groups.contains(&g.gid) {
        Ok(())
    } else {
        Err(format!("{user} is not in group {group}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn origins_are_compared_with_the_host() {
        let h = headers(&[
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8080"),
        ]);
        assert_eq!(same_origin(&h), Some(true));
        let h = headers(&[("host", "node:443"), ("origin", "https://node:443")]);
        assert_eq!(same_origin(&h), Some(true));
        let h = headers(&[
            ("host", "localhost:8080"),
            ("origin", "http://evil.example"),
        ]);
        assert_eq!(same_origin(&h), Some(false));
        let h = headers(&[("host", "localhost:8080"), ("origin", "null")]);
        assert_eq!(same_origin(&h), Some(false));
        assert_eq!(same_origin(&headers(&[("host", "localhost")])), None);
    }

    #[test]
    fn only_loopback_names_pass_when_local() {
        for ok in ["localhost:8080", "127.0.0.1:1", "[::1]:8080", "LOCALHOST"] {
            assert!(host_is_loopback(&headers(&[("host", ok)])), "{ok}");
        }
        for bad in ["evil.example:8080", "192.0.2.1", "localhost.evil.example"] {
            assert!(!host_is_loopback(&headers(&[("host", bad)])), "{bad}");
        }
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; mkve_session=abc; b=2")]);
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers(&[("cookie", "mkve_sessionx=1")])), None);
    }

    #[test]
    fn sessions_open_and_close() {
        let s = Sessions::new();
        let t = s.open("alice").unwrap();
        let (user, csrf) = s.get(&t).unwrap();
        assert_eq!(user, "alice");
        assert_eq!(csrf.len(), 64);
        assert!(s.get("nope").is_none());
        s.close(&t);
        assert!(s.get(&t).is_none());
    }

    #[test]
    fn root_may_log_in_and_a_stranger_may_not() {
        assert!(may_log_in("root", "no-such-group-mkve").is_ok());
        assert!(may_log_in("no-such-user-mkve", "mkve").is_err());
    }
}
