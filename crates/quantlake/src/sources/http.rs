//! What the REST sources (Polygon, Alpaca) share: one `reqwest` client with timeouts, a client-side
//! rate limit (`governor`), and retries with exponential backoff (`backon`) that honour `Retry-After`.
//! Errors name the request (vendor, symbols, range) and the vendor's own message; never a key, because
//! keys travel only in headers marked sensitive, and URLs carry none.

use std::num::NonZeroU32;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};

/// HTTP behaviour of a REST source (`[polygon.http]`, `[alpaca.http]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Timeout of one request, connect to last byte.
    #[serde(with = "crate::duration")]
    pub timeout: Duration,
    /// Client-side rate limit, requests per minute, evenly spaced; 0 = none.
    pub requests_per_minute: u32,
    /// Retries of a request that failed with 413, 429, 499, 5xx, a timeout or a dropped connection.
    pub max_retries: usize,
    /// First backoff delay; doubled per retry (with jitter) up to `retry_max_delay`. A `Retry-After`
    /// header replaces the computed delay.
    #[serde(with = "crate::duration")]
    pub retry_min_delay: Duration,
    #[serde(with = "crate::duration")]
    pub retry_max_delay: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            requests_per_minute: 0,
            max_retries: 5,
            retry_min_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(60),
        }
    }
}

/// The longest `Retry-After` honoured; a server asking for more gets a failed request instead of a hung job.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// How much of an error body an error message quotes.
const QUOTED_BODY: usize = 300;

pub(crate) struct RestClient {
    vendor: &'static str,
    client: reqwest::Client,
    limiter: Option<DefaultDirectRateLimiter>,
    backoff: ExponentialBuilder,
}

/// One failed attempt: retried or final.
enum Attempt {
    Retry { message: String, retry_after: Option<Duration> },
    Fatal(String),
}

impl RestClient {
    pub(crate) fn new(vendor: &'static str, settings: &HttpSettings) -> Result<Self> {
        let timeout = settings.timeout;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("quantlake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("{vendor}: cannot build the HTTP client: {e}")))?;
        let limiter = match NonZeroU32::new(settings.requests_per_minute) {
            None => None,
            Some(n) => {
                // Evenly spaced (burst 1): a burst of n followed by n more would break a per-minute limit.
                let quota = Quota::with_period(Duration::from_secs(60) / n.get())
                    .ok_or_else(|| Error::Config(format!("{vendor}.http.requests_per_minute {n} is too high")))?;
                Some(RateLimiter::direct(quota.allow_burst(NonZeroU32::MIN)))
            }
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(settings.retry_min_delay)
            .with_max_delay(settings.retry_max_delay)
            .with_max_times(settings.max_retries)
            .with_jitter();
        Ok(Self { vendor, client, limiter, backoff })
    }

    /// GETs `url` and returns the body of a 2xx answer. `what` names the request in errors and logs.
    pub(crate) async fn get(&self, url: &Url, headers: &HeaderMap, what: &str) -> Result<Bytes> {
        let attempt = || async {
            if let Some(l) = &self.limiter {
                l.until_ready().await;
            }
            self.attempt(url, headers).await
        };
        attempt
            .retry(self.backoff)
            .when(|e| matches!(e, Attempt::Retry { .. }))
            .adjust(|e, delay| match e {
                // Keep `None` (retries used up); otherwise the server's own wait wins.
                Attempt::Retry { retry_after: Some(wait), .. } => delay.map(|_| *wait),
                _ => delay,
            })
            .notify(|e, delay| {
                if let Attempt::Retry { message, .. } = e {
                    tracing::warn!(vendor = self.vendor, request = what, %message, retry_in = ?delay, "request failed; retrying");
                }
            })
            .await
            .map_err(|e| match e {
                Attempt::Fatal(message) => self.error(what, message),
                Attempt::Retry { message, .. } => self.error(what, format!("{message} (gave up after retries)")),
            })
    }

    async fn attempt(&self, url: &Url, headers: &HeaderMap) -> Result<Bytes, Attempt> {
        let response = match self.client.get(url.clone()).headers(headers.clone()).send().await {
            Ok(r) => r,
            // Timeouts, refused and dropped connections: transient as far as one request can tell.
            Err(e) => return Err(Attempt::Retry { message: without_url(&e), retry_after: None }),
        };
        let status = response.status();
        let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let body = response.bytes().await.map_err(|e| Attempt::Retry {
            message: format!("reading the body: {}", without_url(&e)),
            retry_after: None,
        })?;
        if status.is_success() {
            return Ok(body);
        }
        let message = format!("HTTP {status}: {}", vendor_message(&body));
        if is_retryable(status) { Err(Attempt::Retry { message, retry_after }) } else { Err(Attempt::Fatal(message)) }
    }

    pub(crate) fn error(&self, what: &str, message: String) -> Error {
        Error::Source { source_name: self.vendor.to_string(), request: what.to_string(), message }
    }
}

/// The statuses the vendors' own clients retry.
fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 413 | 429 | 499 | 500 | 502 | 503 | 504)
}

/// `Retry-After` as seconds or an HTTP date, capped.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let wait = match value.trim().parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The vendor's explanation from an error body: a JSON `message` or `error`, else the text itself.
fn vendor_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["message", "error"] {
            if let Some(m) = v.get(key).and_then(|m| m.as_str()) {
                return m.to_string();
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    text.chars().take(QUOTED_BODY).collect()
}

/// A reqwest error without its URL: the request is named by the caller, and a URL could carry a key
/// were a vendor ever configured to take one in the query.
fn without_url(e: &reqwest::Error) -> String {
    let e = e.to_string();
    match e.find(" for url (") {
        Some(i) => e[..i].to_string(),
        None => e,
    }
}

/// Parses a JSON body, naming the request when it is malformed or truncated.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(client: &RestClient, what: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| client.error(what, format!("malformed response body ({} bytes): {e}", body.len())))
}

/// A key or password: printed as `***` by `Debug`, so it cannot reach a log line or an error. It reads
/// from a string or a number (an all-digit key in TOML or `QUANTLAKE_*`), so no type error quotes it.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
            Signed(i64),
        }
        Ok(Secret(
            match Raw::deserialize(d)
                .map_err(|_| serde::de::Error::custom("a key must be a string (value not shown)"))?
            {
                Raw::Text(s) => s,
                Raw::Number(n) => n.to_string(),
                Raw::Signed(n) => n.to_string(),
            },
        ))
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it (a request header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_and_messages() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("99999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            vendor_message(br#"{"status":"NOT_AUTHORIZED","message":"You are not entitled"}"#),
            "You are not entitled"
        );
        assert_eq!(vendor_message(br#"{"status":"ERROR","error":"Unknown API Key"}"#), "Unknown API Key");
        assert_eq!(vendor_message(b"too many requests\n"), "too many requests");
        assert_eq!(vendor_message(b""), "(empty body)");
        assert!(is_retryable(StatusCode::TOO_MANY_REQUESTS) && is_retryable(StatusCode::BAD_GATEWAY));
        assert!(!is_retryable(StatusCode::FORBIDDEN) && !is_retryable(StatusCode::UNPROCESSABLE_ENTITY));
    }
}
