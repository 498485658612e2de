//! The access token. When the server has one (`QUANTLAKE_TOKEN`; required with `--bind` to an
//! address other than loopback), every request must carry it: as `Authorization: Bearer <token>`
//! (programs), or as the session cookie the login form sets (people). The cookie holds a digest of
//! the token, never the token itself, and is `HttpOnly` and `SameSite=Strict`, so another site's
//! page cannot post forms with it.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::AppState;
use super::api::ApiError;

const COOKIE: &str = "quantlake_session";

/// The token, kept as digests: comparing digests takes the same time wherever the inputs differ.
pub struct Token {
    digest: Vec<u8>,
    session: String,
}

impl Token {
    pub fn new(token: &str) -> Self {
        let digest = Sha256::digest(token.as_bytes()).to_vec();
        // The cookie value: a digest of the token's digest, so the cookie does not reveal the token.
        let session = hex::encode(Sha256::digest(&digest));
        Self { digest, session }
    }

    fn matches(&self, presented: &str) -> bool {
        let d = Sha256::digest(presented.as_bytes());
        d.len() == self.digest.len() && d.iter().zip(self.digest.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    fn matches_session(&self, cookie: &str) -> bool {
        cookie.len() == self.session.len()
            && cookie.bytes().zip(self.session.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/login", get(login_form).post(login)).route("/logout", get(logout))
}

/// Lets a request through when the server has no token, or it carries the token. A request that
/// changes something must come from this server's own pages (or from a program, which sends no
/// `Origin`): another site's page cannot post to a dashboard on 127.0.0.1 through the browser.
pub async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != axum::http::Method::GET
        && request.method() != axum::http::Method::HEAD
        && !same_origin(request.headers())
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "a request from another site's page; post from the dashboard itself",
        )
        .into_response();
    }
    let Some(token) = state.token() else {
        // Without a token, only requests addressed to the loopback names: a site whose name
        // re-resolves to 127.0.0.1 (DNS rebinding) would otherwise be "same origin".
        if loopback_host(request.headers()) {
            return next.run(request).await;
        }
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "without an access token the dashboard answers only at 127.0.0.1, localhost or [::1]",
        )
        .into_response();
    };
    let path = request.uri().path();
    if path == "/login" || path == "/logout" || path.starts_with("/assets/") || authorized(token, request.headers()) {
        return next.run(request).await;
    }
    if path.starts_with("/api/") {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this dashboard needs its access token: send Authorization: Bearer <QUANTLAKE_TOKEN>",
        )
        .into_response();
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return r;
    }
    let next_page = request.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    Redirect::to(&format!(
        "/login?next={}",
        url::form_urlencoded::byte_serialize(next_page.as_bytes()).collect::<String>()
    ))
    .into_response()
}

/// No `Origin` (not a browser's cross-site request), or one naming this server's host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest).trim_end_matches('/');
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// `Host` names this machine's loopback (any port).
fn loopback_host(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let name = if host.starts_with('[') {
        host.split(']').next().map(|h| format!("{h}]")).unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default().to_string()
    };
    matches!(name.to_ascii_lowercase().as_str(), "127.0.0.1" | "localhost" | "[::1]")
}

fn authorized(token: &Token, headers: &HeaderMap) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, value)| value);
    if bearer.is_some_and(|b| token.matches(b.trim())) {
        return true;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE).and_then(|rest| rest.strip_prefix('=')))
        .any(|value| token.matches_session(value))
}

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

async fn login_form(axum::extract::Query(q): axum::extract::Query<LoginQuery>) -> Html<String> {
    Html(super::pages::login_page(&safe_next(q.next.as_deref()), None).into_string())
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    let next = safe_next(form.next.as_deref());
    let Some(token) = state.token() else { return Redirect::to(&next).into_response() };
    if !token.matches(form.token.trim()) {
        tracing::warn!("dashboard: a login with a wrong token");
        let page = super::pages::login_page(&next, Some("That is not the access token."));
        return (StatusCode::UNAUTHORIZED, Html(page.into_string())).into_response();
    }
    let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", token.session);
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

/// Only a path on this server: never an open redirect to another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            n.to_string()
        }
        _ => "/".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_and_its_session_match_only_themselves() {
        let t = Token::new("s3cret");
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cret "));
        assert!(!t.matches(""));
        assert!(t.matches_session(&t.session));
        assert!(!t.matches_session("s3cret"));
        assert_ne!(
            t.session,
            hex::encode(Sha256::digest(b"s3cret")),
            "the cookie must not be the token's plain digest"
        );
    }

    #[test]
    fn only_same_origin_posts_pass() {
        let headers = |origin: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
            if let Some(o) = origin {
                h.insert(header::ORIGIN, o.parse().unwrap());
            }
            h
        };
        assert!(same_origin(&headers(None)));
        assert!(same_origin(&headers(Some("http://127.0.0.1:8080"))));
        assert!(!same_origin(&headers(Some("https://evil.example"))));
        assert!(!same_origin(&headers(Some("http://127.0.0.1:9999"))));
    }

    #[test]
    fn next_is_a_local_path() {
        assert_eq!(safe_next(Some("/jobs?x=1")), "/jobs?x=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/", "browsers drop the tab: //evil.example");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn only_loopback_names_without_a_token() {
        let host = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, h.parse().unwrap());
            m
        };
        for ok in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST", "[::1]:8080"] {
            assert!(loopback_host(&host(ok)), "{ok}");
        }
        for bad in ["evil.example:8080", "127.0.0.1.evil.example", "[::2]:8080"] {
            assert!(!loopback_host(&host(bad)), "{bad}");
        }
        assert!(!loopback_host(&HeaderMap::new()));
    }
}
