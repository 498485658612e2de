//! quantlake's TWS / IB Gateway client: 1-minute bars per session through
//! the `ibapi` crate, paced by a shared [`Pacer`], with IB's error codes mapped
//! to a retry policy.
//!
//! Reconnects are done here, not by ibapi: the ibapi client is built with
//! `max_reconnect_attempts(0)`, because its own reconnect re-sends in-flight
//! requests behind the pacer's back (an identical request within 15 s is a
//! pacing violation). After a dropped socket every caller fails with
//! `ConnectionFailed`; the first to notice opens a new session and each caller
//! re-sends through the pacer.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ibapi::Client;
use ibapi::contracts::Contract;
use ibapi::market_data::TradingHours;
use ibapi::market_data::historical::{BarSize as IbBarSize, BarTimestamp, ToDuration, WhatToShow};
use time::OffsetDateTime;
use tokio::sync::{Mutex, RwLock, watch};

use super::pacing::Pacer;
use crate::bars::{Bar, BarSize};

#[derive(Clone, Debug)]
pub struct TwsConfig {
    pub host: String,
    pub port: u16,
    pub client_id: i32,
    /// Bound on connecting and on each request (ibapi's `one_shot_timeout`).
    pub timeout: Duration,
    /// Regular trading hours only (09:30-16:00 New York) or extended hours.
    pub regular_hours: bool,
    pub exchange: String,
    pub currency: String,
    /// Retries of one request after a pacing error or a timeout.
    pub max_retries: u32,
    /// Attempts to open a new session after the socket dropped.
    pub reconnect_attempts: u32,
}

impl Default for TwsConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 4002,
            client_id: 17,
            timeout: Duration::from_secs(60),
            regular_hours: true,
            exchange: "SMART".into(),
            currency: "USD".into(),
            max_retries: 5,
            reconnect_attempts: 5,
        }
    }
}

/// What IB's contract details say of a stock.
#[derive(Clone, Debug, PartialEq)]
pub struct StockDetails {
    pub con_id: i32,
    pub symbol: String,
    pub sec_type: String,
    pub primary_exchange: Option<String>,
    pub currency: Option<String>,
    pub long_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DayBars {
    pub bars: Vec<Bar>,
    /// IB said there is no data for this session (holiday, not yet listed, ...).
    pub no_data: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TwsError {
    #[error("cannot connect to TWS/IB Gateway at {addr}; is the API enabled? ({detail})")]
    Connect { addr: String, detail: String },
    #[error("{symbol}: no security definition (IB 200): {message}")]
    NoSecurity { symbol: String, message: String },
    #[error("{symbol}: invalid request (IB 321): {message}")]
    Invalid { symbol: String, message: String },
    #[error("{symbol}: no market data subscription/permissions (IB {code}): {message}")]
    NotSubscribed { symbol: String, code: i32, message: String },
    #[error("{symbol}: no answer from TWS within {timeout:?} after {attempts} attempts")]
    Timeout { symbol: String, timeout: Duration, attempts: u32 },
    #[error("{symbol}: disconnected from TWS/IB Gateway: {detail}")]
    Disconnected { symbol: String, detail: String },
    #[error("{symbol}: {detail}")]
    Other { symbol: String, detail: String },
}

/// What the policy does with one attempt's outcome.
enum Verdict<T> {
    Done(T),
    NoData(String),
    Pacing(String),
    Timeout,
    Disconnected(String),
    Fatal(TwsError),
}

fn classify<T>(symbol: &str, result: Result<T, ibapi::Error>) -> Verdict<T> {
    use ibapi::Error as E;
    let err = match result {
        Ok(v) => return Verdict::Done(v),
        Err(e) => e,
    };
    let s = symbol.to_string();
    match err {
        E::Notice(n) => {
            let lower = n.message.to_ascii_lowercase();
            if lower.contains("no market data permissions") || n.code == 354 {
                Verdict::Fatal(TwsError::NotSubscribed { symbol: s, code: n.code, message: n.message })
            } else if n.code == 162 && lower.contains("returned no data") {
                Verdict::NoData(n.message)
            } else if n.code == 162 && (lower.contains("pacing") || lower.contains("query cancelled")) {
                Verdict::Pacing(n.message)
            } else if n.code == 165 && !lower.contains("connection was successful") {
                Verdict::NoData(n.message)
            } else if n.code == 200 {
                Verdict::Fatal(TwsError::NoSecurity { symbol: s, message: n.message })
            } else if n.code == 321 {
                Verdict::Fatal(TwsError::Invalid { symbol: s, message: n.message })
            } else {
                Verdict::Fatal(TwsError::Other { symbol: s, detail: format!("IB error {}: {}", n.code, n.message) })
            }
        }
        E::Timeout => Verdict::Timeout,
        E::ConnectionReset
        | E::ConnectionFailed
        | E::Shutdown
        | E::UnexpectedEndOfStream
        | E::ConnectionRejected(_)
        | E::Io(_) => Verdict::Disconnected(err.to_string()),
        other => Verdict::Fatal(TwsError::Other { symbol: s, detail: other.to_string() }),
    }
}

struct Session {
    generation: u64,
    client: Arc<Client>,
    watcher: tokio::task::JoinHandle<()>,
}

/// A paced connection to TWS / IB Gateway.
pub struct TwsClient {
    cfg: TwsConfig,
    pacer: Arc<Pacer>,
    session: RwLock<Session>,
    reconnecting: Mutex<()>,
    /// True while TWS reports lost connectivity to IB (1100 until 1101/1102).
    ib_down: watch::Sender<bool>,
}

impl Drop for TwsClient {
    fn drop(&mut self) {
        if let Ok(s) = self.session.try_read() {
            s.watcher.abort();
        }
    }
}

impl TwsClient {
    pub async fn connect(cfg: TwsConfig, pacer: Arc<Pacer>) -> Result<Self, TwsError> {
        let (ib_down, _) = watch::channel(false);
        let client = open_session(&cfg).await?;
        let watcher = spawn_notice_watcher(&client, ib_down.clone());
        Ok(Self {
            cfg,
            pacer,
            session: RwLock::new(Session { generation: 0, client, watcher }),
            reconnecting: Mutex::new(()),
            ib_down,
        })
    }

    pub fn config(&self) -> &TwsConfig {
        &self.cfg
    }

    fn contract(&self, symbol: &str, con_id: Option<i32>) -> Contract {
        let mut c = Contract::stock(symbol)
            .on_exchange(self.cfg.exchange.as_str())
            .in_currency(self.cfg.currency.as_str())
            .build();
        if let Some(id) = con_id {
            c.contract_id = id;
        }
        c
    }

    fn trading_hours(&self) -> TradingHours {
        if self.cfg.regular_hours { TradingHours::Regular } else { TradingHours::Extended }
    }

    /// TRADES bars of `size` (1-minute bars, or the daily bar) of the session that ends at
    /// `session_end_utc`: one `1 D` request ending there, IB's rule for minute bars.
    pub async fn day_bars(
        &self,
        symbol: &str,
        con_id: Option<i32>,
        session_end_utc: DateTime<Utc>,
        size: BarSize,
    ) -> Result<DayBars, TwsError> {
        let (ib_size, size_text) = match size {
            BarSize::Minute => (IbBarSize::Min, "1 min"),
            BarSize::Day => (IbBarSize::Day, "1 day"),
        };
        let contract = self.contract(symbol, con_id);
        let end = OffsetDateTime::from_unix_timestamp(session_end_utc.timestamp())
            .map_err(|e| TwsError::Invalid { symbol: symbol.into(), message: e.to_string() })?;
        let hours = self.trading_hours();
        let request_key = format!(
            "{symbol}@{}|{}|{size_text}|rth={}",
            self.cfg.exchange,
            session_end_utc.format("%Y%m%d %H:%M:%S"),
            self.cfg.regular_hours
        );
        let outcome = self
            .paced(symbol, &request_key, |client| {
                let contract = contract.clone();
                async move {
                    client
                        .historical_data(&contract, ib_size)
                        .ending(end)
                        .duration(1.days())
                        .what_to_show(WhatToShow::Trades)
                        .trading_hours(hours)
                        .fetch()
                        .await
                }
            })
            .await?;
        match outcome {
            None => Ok(DayBars { bars: Vec::new(), no_data: true }),
            Some(data) => {
                let bars = data
                    .bars
                    .into_iter()
                    .map(convert_bar)
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(|detail| TwsError::Other { symbol: symbol.into(), detail })?;
                Ok(DayBars { bars, no_data: false })
            }
        }
    }

    /// Earliest available TRADES data for the contract; `None` when IB has none at all.
    pub async fn head_timestamp(&self, symbol: &str, con_id: Option<i32>) -> Result<Option<DateTime<Utc>>, TwsError> {
        let contract = self.contract(symbol, con_id);
        let hours = self.trading_hours();
        let request_key = format!("{symbol}@{}|head|rth={}", self.cfg.exchange, self.cfg.regular_hours);
        let outcome = self
            .paced(symbol, &request_key, |client| {
                let contract = contract.clone();
                async move { client.head_timestamp(&contract, WhatToShow::Trades, hours).await }
            })
            .await?;
        match outcome {
            None => Ok(None),
            Some(t) => DateTime::from_timestamp(t.unix_timestamp(), 0).map(Some).ok_or_else(|| TwsError::Other {
                symbol: symbol.into(),
                detail: format!("head timestamp out of range: {t}"),
            }),
        }
    }

    /// The stock contracts IB lists for `symbol` on the configured exchange and currency (its
    /// contract id, primary exchange and long name), through the pacer and the error policy.
    pub async fn stock_details(&self, symbol: &str) -> Result<Vec<StockDetails>, TwsError> {
        let contract = self.contract(symbol, None);
        let request_key = format!("{symbol}@{}|details", self.cfg.exchange);
        let outcome = self
            .paced(symbol, &request_key, |client| {
                let contract = contract.clone();
                async move { client.contract_details(&contract).await }
            })
            .await?;
        Ok(outcome
            .unwrap_or_default()
            .into_iter()
            .map(|d| StockDetails {
                con_id: d.contract.contract_id,
                symbol: d.contract.symbol.to_string(),
                sec_type: d.contract.security_type.to_string(),
                primary_exchange: Some(d.contract.primary_exchange.to_string()).filter(|e| !e.is_empty()),
                currency: Some(d.contract.currency.to_string()).filter(|c| !c.is_empty()),
                long_name: Some(d.long_name).filter(|n| !n.is_empty()),
            })
            .collect())
    }

    /// Runs `op` through the pacer with the error policy; `Ok(None)` = IB has no data.
    async fn paced<T, F, Fut>(&self, symbol: &str, request_key: &str, op: F) -> Result<Option<T>, TwsError>
    where
        F: Fn(Arc<Client>) -> Fut,
        Fut: Future<Output = Result<T, ibapi::Error>>,
    {
        let contract_key = format!("{symbol}@{}", self.cfg.exchange);
        let mut retries = 0u32; // pacing + timeout retries
        let mut reconnects = 0u32;
        let mut timeouts = 0u32;
        loop {
            self.wait_ib_connectivity().await;
            let (generation, client) = {
                let s = self.session.read().await;
                (s.generation, Arc::clone(&s.client))
            };
            let permit = self.pacer.acquire(&contract_key, request_key).await;
            let result = op(client).await;
            drop(permit);
            match classify(symbol, result) {
                Verdict::Done(v) => return Ok(Some(v)),
                Verdict::NoData(msg) => {
                    tracing::info!(symbol, "no data: {msg}");
                    return Ok(None);
                }
                Verdict::Fatal(e) => return Err(e),
                Verdict::Pacing(msg) => {
                    let penalty = self.pacer.rules().identical_gap;
                    tracing::warn!(symbol, "pacing violation reported by IB ({msg}); pausing {penalty:?}");
                    self.pacer.penalize(penalty);
                    if retries >= self.cfg.max_retries {
                        return Err(TwsError::Other {
                            symbol: symbol.into(),
                            detail: format!("still paced after {retries} retries: {msg}"),
                        });
                    }
                    retries += 1;
                }
                Verdict::Timeout => {
                    timeouts += 1;
                    if retries >= self.cfg.max_retries {
                        return Err(TwsError::Timeout {
                            symbol: symbol.into(),
                            timeout: self.cfg.timeout,
                            attempts: timeouts,
                        });
                    }
                    let backoff =
                        (self.cfg.timeout / 4).saturating_mul(1 << retries.min(6)).min(Duration::from_secs(30));
                    tracing::warn!(symbol, "timeout; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    retries += 1;
                }
                Verdict::Disconnected(detail) => {
                    if reconnects >= self.cfg.reconnect_attempts {
                        return Err(TwsError::Disconnected { symbol: symbol.into(), detail });
                    }
                    reconnects += 1;
                    if let Err(e) = self.reconnect(generation).await {
                        return Err(TwsError::Disconnected {
                            symbol: symbol.into(),
                            detail: format!("{detail}; reconnect failed: {e}"),
                        });
                    }
                }
            }
        }
    }

    /// After 1100 (TWS lost IB) hold new requests until 1101/1102, at most one timeout.
    async fn wait_ib_connectivity(&self) {
        let mut rx = self.ib_down.subscribe();
        if *rx.borrow() {
            tracing::warn!("TWS reports lost connectivity to IB; holding new requests");
            let _ = tokio::time::timeout(self.cfg.timeout, rx.wait_for(|down| !*down)).await;
        }
    }

    /// Replace the session `generation` with a new one (no-op if someone already did).
    async fn reconnect(&self, generation: u64) -> Result<(), TwsError> {
        let _guard = self.reconnecting.lock().await;
        if self.session.read().await.generation != generation {
            return Ok(());
        }
        let mut delay = Duration::ZERO;
        let mut next = Duration::from_secs(1);
        let mut last = None;
        for attempt in 1..=self.cfg.reconnect_attempts.max(1) {
            tokio::time::sleep(delay).await;
            match open_session(&self.cfg).await {
                Ok(client) => {
                    // A new session starts connected: a 1100 of the old one must not hold requests.
                    self.ib_down.send_replace(false);
                    let watcher = spawn_notice_watcher(&client, self.ib_down.clone());
                    let mut s = self.session.write().await;
                    s.watcher.abort();
                    *s = Session { generation: generation + 1, client, watcher };
                    tracing::info!(attempt, "reconnected to TWS");
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(attempt, "reconnect failed: {e}");
                    last = Some(e);
                }
            }
            (delay, next) = (next, (delay + next).min(Duration::from_secs(30)));
        }
        Err(last.unwrap_or_else(|| TwsError::Connect {
            addr: format!("{}:{}", self.cfg.host, self.cfg.port),
            detail: "no reconnect attempt made".into(),
        }))
    }
}

/// What [`check_connection`] found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectionCheck {
    pub address: String,
    pub client_id: i32,
    /// The API version TWS / IB Gateway agreed to in the handshake.
    pub server_version: i32,
    /// When the connection was made, by TWS's clock (from the handshake).
    pub connection_time: Option<DateTime<Utc>>,
    /// TWS's clock now (`reqCurrentTime`).
    pub server_time: DateTime<Utc>,
    /// TWS's clock minus this machine's, seconds (whole seconds: TWS answers in seconds).
    pub clock_skew_seconds: i64,
    /// Connect, handshake, current time and disconnect, seconds.
    pub seconds: f64,
}

/// The runbook's connectivity check: connect and handshake, read the server version, ask for the
/// current time, disconnect. Each step is bounded by `cfg.timeout`.
pub async fn check_connection(cfg: &TwsConfig) -> Result<ConnectionCheck, TwsError> {
    let started = std::time::Instant::now();
    let client = open_session(cfg).await?;
    let address = format!("{}:{}", cfg.host, cfg.port);
    let asked = Utc::now();
    let server_time = match tokio::time::timeout(cfg.timeout, client.server_time()).await {
        Ok(Ok(t)) => utc(t),
        Ok(Err(e)) => Err(format!("connected, but the current time request failed: {e}")),
        Err(_) => Err(format!("connected, but no current time within {:?}", cfg.timeout)),
    };
    let (server_version, connection_time) =
        (client.server_version(), client.connection_time().and_then(|t| utc(t).ok()));
    client.disconnect().await;
    let server_time = server_time.map_err(|detail| TwsError::Connect { addr: address.clone(), detail })?;
    Ok(ConnectionCheck {
        address,
        client_id: cfg.client_id,
        server_version,
        connection_time,
        server_time,
        clock_skew_seconds: server_time.timestamp() - asked.timestamp(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn utc(t: OffsetDateTime) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()).ok_or_else(|| format!("time {t} out of range"))
}

async fn open_session(cfg: &TwsConfig) -> Result<Arc<Client>, TwsError> {
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let connect = Client::builder()
        .address(addr.as_str())
        .client_id(cfg.client_id)
        .one_shot_timeout(cfg.timeout)
        .max_reconnect_attempts(0)
        .connect();
    match tokio::time::timeout(cfg.timeout, connect).await {
        Ok(Ok(client)) => Ok(Arc::new(client)),
        Ok(Err(e)) => Err(TwsError::Connect { addr, detail: e.to_string() }),
        Err(_) => Err(TwsError::Connect { addr, detail: format!("no handshake within {:?}", cfg.timeout) }),
    }
}

fn spawn_notice_watcher(client: &Client, ib_down: watch::Sender<bool>) -> tokio::task::JoinHandle<()> {
    let stream = client.notice_stream();
    tokio::spawn(async move {
        let Ok(mut stream) = stream else { return };
        while let Some(n) = stream.next().await {
            match n.code {
                1100 => {
                    tracing::warn!("TWS: {}", n.message);
                    ib_down.send_replace(true);
                }
                1101 | 1102 => {
                    tracing::info!("TWS: {}", n.message);
                    ib_down.send_replace(false);
                }
                // Notices quantlake does not act on are still news to an operator (farm status, ...).
                _ => tracing::info!(code = n.code, "TWS notice: {}", n.message),
            }
        }
    })
}

fn convert_bar(b: ibapi::market_data::historical::Bar) -> Result<Bar, String> {
    let ts = match b.date {
        BarTimestamp::DateTime(t) => DateTime::from_timestamp(t.unix_timestamp(), 0).ok_or("bar time out of range")?,
        // A daily bar: stamped at midnight New York, like every daily dataset.
        BarTimestamp::Date(d) => chrono::NaiveDate::from_ymd_opt(d.year(), d.month() as u32, u32::from(d.day()))
            .and_then(|d| crate::calendar::NyseCalendar.day_start(d))
            .ok_or_else(|| format!("daily bar date {d} has no New York midnight"))?,
    };
    Ok(Bar {
        ts,
        open: b.open,
        high: b.high,
        low: b.low,
        close: b.close,
        volume: b.volume,
        // ibapi decodes an absent wap as 0 and an absent count as -1.
        vwap: (b.wap > 0.0).then_some(b.wap),
        trade_count: (b.count >= 0).then_some(b.count as i64),
    })
}
