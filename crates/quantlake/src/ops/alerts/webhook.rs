//! The webhook sink: each alert POSTed as JSON to `[alerts] webhook_url`, with an optional header
//! whose value comes from the environment (`webhook_header` = value of `webhook_header_env`).
//!
//! The body is the [`AlertEvent`] plus `text`, its log line (what Slack-style receivers display):
//!
//! ```json
//! { "text": "ALERT CRITICAL lag:curated: ...", "id": "20260102T030405.000000Z-...", "key": "lag:curated",
//!   "kind": "triggered", "severity": "CRITICAL", "previous": "OK", "summary": "...", "details": {...},
//!   "at": "...", "incident_start": "...", "seq": 1 }
//! ```
//!
//! A POST that fails with a connection error, a timeout, 408, 429 or a 5xx is retried with
//! exponential backoff (`backon`); any other answer is final. A webhook that stays down is logged
//! (`Failed to deliver alert ...`) and reported in the event's [`Delivery`], never returned as an
//! error. The URL (whose path or query often is the token) and the header's value appear in no log
//! line and no error: the webhook is named by scheme, host and port only, and error texts are
//! scrubbed of both.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{AlertEvent, AlertSettings};
use crate::error::{Error, Result};

/// How much of an error response's body a delivery error quotes.
const QUOTED_BODY: usize = 200;

/// How a webhook took one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub delivered: bool,
    /// POSTs made (1 + retries).
    pub attempts: u32,
    /// Why the last attempt failed (no URL, no secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub(crate) struct Webhook {
    client: reqwest::Client,
    url: Url,
    header: Option<(HeaderName, HeaderValue)>,
    backoff: ExponentialBuilder,
    /// `scheme://host:port`: how logs name the webhook.
    target: String,
    /// Texts that must not reach a log or an error: the URL, its path and query, the header's value.
    secrets: Vec<String>,
}

/// One failed POST: worth retrying or final.
enum Attempt {
    Retry(String),
    Fatal(String),
}

impl Webhook {
    /// The webhook `settings` configure, or `None` without `webhook_url`.
    pub(crate) fn from_settings(settings: &AlertSettings) -> Result<Option<Self>> {
        let Some(secret_url) = settings.webhook_url.as_ref().filter(|u| !u.expose().trim().is_empty()) else {
            return Ok(None);
        };
        let url = Url::parse(secret_url.expose().trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                Error::Config("alerts.webhook_url is not an http(s) URL (value not shown: it may hold a token)".into())
            })?;
        let mut secrets = vec![secret_url.expose().trim().to_string()];
        secrets.extend(
            [url.path().to_string(), url.query().unwrap_or_default().to_string()].into_iter().filter(|s| s.len() > 1),
        );
        if !url.username().is_empty() || url.password().is_some() {
            secrets.extend([url.username().to_string(), url.password().unwrap_or_default().to_string()]);
        }
        let header = match settings.webhook_header_env.as_deref().filter(|v| !v.is_empty()) {
            None => None,
            Some(var) => {
                let value = std::env::var(var)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| Error::Config(format!("alerts.webhook_header_env names {var}, which is not set")))?;
                let name = HeaderName::from_bytes(settings.webhook_header.as_bytes()).map_err(|_| {
                    Error::Config(format!("alerts.webhook_header '{}' is not a header name", settings.webhook_header))
                })?;
                let mut value_header = HeaderValue::from_str(&value).map_err(|_| {
                    Error::Config(format!("the value of {var} is not a valid header value (not shown)"))
                })?;
                // Kept out of reqwest's own Debug output.
                value_header.set_sensitive(true);
                secrets.push(value);
                Some((name, value_header))
            }
        };
        let timeout = settings.webhook_timeout;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("quantlake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("alerts webhook: cannot build the HTTP client: {}", e.without_url())))?;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(settings.webhook_retry_min_delay)
            .with_max_delay(settings.webhook_retry_max_delay)
            .with_max_times(settings.webhook_max_retries)
            .with_jitter();
        let target = format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        Ok(Some(Self { client, url, header, backoff, target, secrets }))
    }

    /// POSTs `event`, retrying transient failures; logs a final failure and reports it, never fails.
    pub(crate) async fn send(&self, event: &AlertEvent) -> Delivery {
        let body = match payload(event) {
            Ok(b) => b,
            Err(e) => return self.failed(event, 0, format!("cannot encode the alert: {e}")),
        };
        let attempts = AtomicU32::new(0);
        let post = || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            self.post(body.clone()).await
        };
        let result = post
            .retry(self.backoff)
            .when(|e| matches!(e, Attempt::Retry(_)))
            .notify(|e, delay| {
                if let Attempt::Retry(message) = e {
                    tracing::warn!(webhook = %self.target, key = %event.key, retry_in = ?delay, "alert webhook failed ({message}); retrying");
                }
            })
            .await;
        let attempts = attempts.load(Ordering::Relaxed);
        match result {
            Ok(()) => Delivery { delivered: true, attempts, error: None },
            Err(Attempt::Retry(message) | Attempt::Fatal(message)) => self.failed(event, attempts, message),
        }
    }

    async fn post(&self, body: Vec<u8>) -> std::result::Result<(), Attempt> {
        let mut request = self.client.post(self.url.clone()).header(CONTENT_TYPE, "application/json").body(body);
        if let Some((name, value)) = &self.header {
            request = request.header(name.clone(), value.clone());
        }
        let response = match request.send().await {
            Ok(r) => r,
            // Refused, dropped or timed out: transient as far as one POST can tell.
            Err(e) => return Err(Attempt::Retry(self.scrub(&describe(e)))),
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.bytes().await.unwrap_or_default();
        let text: String = String::from_utf8_lossy(&body).trim().chars().take(QUOTED_BODY).collect();
        let message =
            self.scrub(&format!("HTTP {status}{}", if text.is_empty() { String::new() } else { format!(": {text}") }));
        if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
            Err(Attempt::Retry(message))
        } else {
            Err(Attempt::Fatal(message))
        }
    }

    fn failed(&self, event: &AlertEvent, attempts: u32, message: String) -> Delivery {
        tracing::error!(webhook = %self.target, key = %event.key, id = %event.id, "Failed to deliver alert {} to webhook {} after {attempts} attempt(s): {message}", event.key, self.target);
        Delivery { delivered: false, attempts, error: Some(message) }
    }

    /// `text` with every secret replaced by `***`, longest first (the URL contains its path).
    fn scrub(&self, text: &str) -> String {
        // Shorter texts would scrub ordinary words; errors carry no URL anyway (reqwest's is removed).
        let mut secrets: Vec<&String> = self.secrets.iter().filter(|s| s.len() >= 3).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.iter().fold(text.to_string(), |t, s| t.replace(s.as_str(), "***"))
    }
}

/// The JSON body: the event and its log line as `text`.
fn payload(event: &AlertEvent) -> Result<Vec<u8>> {
    let mut value = serde_json::to_value(event)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("text".into(), serde_json::Value::String(event.line()));
    }
    Ok(serde_json::to_vec(&value)?)
}

/// A reqwest error without its URL, with its causes ("error sending request: tcp connect error:
/// Connection refused").
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::Secret;

    #[test]
    fn urls_and_headers_are_checked_without_quoting_them() {
        let with = |url: &str| AlertSettings { webhook_url: Some(Secret::new(url)), ..AlertSettings::default() };
        assert!(Webhook::from_settings(&AlertSettings::default()).unwrap().is_none());
        assert!(Webhook::from_settings(&with("  ")).unwrap().is_none(), "an empty URL is no webhook");
        for bad in ["ftp://h/tok-123", "not a url tok-123", "http://:80/tok-123"] {
            let err = Webhook::from_settings(&with(bad)).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("webhook_url") && !err.contains("tok-123"), "{bad}: {err}");
        }
        let unset = AlertSettings {
            webhook_header_env: Some("QUANTLAKE_TEST_UNSET_WEBHOOK_TOKEN".into()),
            ..with("http://127.0.0.1:9/x")
        };
        assert!(
            Webhook::from_settings(&unset)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("QUANTLAKE_TEST_UNSET_WEBHOOK_TOKEN")
        );
        let hook =
            Webhook::from_settings(&with("https://user:pw-42@hooks.example.com:8443/services/tok-123?key=k-456"))
                .unwrap()
                .unwrap();
        assert_eq!(hook.target, "https://hooks.example.com:8443");
        let scrubbed = hook.scrub("POST https://user:pw-42@hooks.example.com:8443/services/tok-123?key=k-456 failed; path /services/tok-123 key=k-456 pw-42");
        assert!(
            !scrubbed.contains("tok-123") && !scrubbed.contains("k-456") && !scrubbed.contains("pw-42"),
            "{scrubbed}"
        );
    }
}
