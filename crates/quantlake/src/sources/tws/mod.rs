//! Interactive Brokers TWS / IB Gateway through the `ibapi` crate.
//!
//! One request per symbol and session (`1 D` ending at the session's end, IB's rule for minute
//! bars), every request through a shared [`Pacer`] that keeps IB's historical-data pacing rules, and
//! IB's error codes mapped to a policy ([`client`]): pacing violations and timeouts are retried, "no
//! data" days are recorded as empty, a contract IB does not know (200), a request it refuses (321) or
//! a missing subscription (354) fail that symbol only, and a dropped connection is re-opened.
//! `head_timestamp` bounds how far back a symbol is asked for: sessions before it are empty without
//! a request.

pub mod client;
pub mod pacing;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

pub use client::{ConnectionCheck, DayBars, StockDetails, TwsClient, TwsConfig, TwsError};
pub use pacing::{Pacer, PacingRules};

use super::{Bar, BarSize, BarSource, Fetched, SymbolFailure, into_sessions};
use crate::calendar::Session;
use crate::error::{Error, Result};
use crate::symbol::Symbol;

/// `[tws]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TwsSettings {
    pub host: String,
    /// 7496/7497: TWS live/paper; 4001/4002: IB Gateway live/paper.
    pub port: u16,
    pub client_id: i32,
    /// Bound on connecting and on every request; a silent TWS never hangs a job.
    #[serde(with = "crate::duration")]
    pub timeout: Duration,
    /// Regular trading hours only (09:30-16:00 New York), or extended hours (04:00-20:00).
    pub regular_hours: bool,
    pub exchange: String,
    pub currency: String,
    /// Retries of one request after a pacing violation or a timeout.
    pub max_retries: u32,
    /// Attempts to re-open a dropped connection (Fibonacci backoff up to 30 s).
    pub reconnect_attempts: u32,
    /// Requests in flight at once (the pacer still holds each one to IB's rules).
    pub concurrency: usize,
    pub pacing: PacingSettings,
}

/// IB's historical-data pacing rules (`[tws.pacing]`); the defaults are IB's published limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PacingSettings {
    /// No identical request within this gap.
    #[serde(with = "crate::duration")]
    pub identical_gap: Duration,
    /// At most `per_contract_max` requests for one contract within `per_contract_window`.
    #[serde(with = "crate::duration")]
    pub per_contract_window: Duration,
    pub per_contract_max: usize,
    /// At most `window_max` requests within `window`.
    #[serde(with = "crate::duration")]
    pub window: Duration,
    pub window_max: usize,
    /// At most this many requests open at once.
    pub max_open: usize,
}

impl Default for TwsSettings {
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
            concurrency: 8,
            pacing: PacingSettings::default(),
        }
    }
}

impl Default for PacingSettings {
    fn default() -> Self {
        Self {
            identical_gap: Duration::from_secs(15),
            per_contract_window: Duration::from_secs(2),
            per_contract_max: 5,
            window: Duration::from_secs(600),
            window_max: 60,
            max_open: 50,
        }
    }
}

impl PacingSettings {
    pub fn rules(&self) -> Result<PacingRules> {
        if self.per_contract_max == 0 || self.window_max == 0 || self.max_open == 0 {
            return Err(Error::Config(
                "tws.pacing: per_contract_max, window_max and max_open must be at least 1".into(),
            ));
        }
        Ok(PacingRules {
            identical_gap: self.identical_gap,
            per_contract_window: self.per_contract_window,
            per_contract_max: self.per_contract_max,
            window: self.window,
            window_max: self.window_max,
            max_open: self.max_open,
        })
    }
}

impl TwsSettings {
    pub fn client_config(&self) -> Result<TwsConfig> {
        Ok(TwsConfig {
            host: self.host.clone(),
            port: self.port,
            client_id: self.client_id,
            timeout: self.timeout,
            regular_hours: self.regular_hours,
            exchange: self.exchange.clone(),
            currency: self.currency.clone(),
            max_retries: self.max_retries,
            reconnect_attempts: self.reconnect_attempts,
        })
    }
}

/// A symbol's earliest data, looked up once.
type HeadCell = tokio::sync::OnceCell<Option<DateTime<Utc>>>;

/// The TWS bar source.
pub struct TwsSource {
    client: TwsClient,
    regular_hours: bool,
    concurrency: usize,
    /// Earliest data per symbol (`None`: IB has none), asked once per source even when many
    /// sessions of a symbol start at once.
    heads: Mutex<HashMap<String, Arc<HeadCell>>>,
    /// IB contract ids from the universe: a request by id cannot pick the wrong listing.
    con_ids: HashMap<Symbol, i32>,
}

impl TwsSource {
    /// Connects; fails with "cannot connect to TWS/IB Gateway at host:port; is the API enabled?" when
    /// nothing answers.
    pub async fn connect(settings: &TwsSettings) -> Result<Self> {
        let config = settings.client_config()?;
        let pacer = Arc::new(Pacer::new(settings.pacing.rules()?));
        let client = TwsClient::connect(config, pacer).await.map_err(|e| tws_error("connect", e))?;
        Ok(Self {
            client,
            regular_hours: settings.regular_hours,
            concurrency: settings.concurrency.max(1),
            heads: Mutex::new(HashMap::new()),
            con_ids: HashMap::new(),
        })
    }

    /// The stock contracts IB lists for `symbol` (`tws.exchange`, `tws.currency`): IB's answer 200
    /// (no security definition) is an empty list, any other failure an error.
    pub async fn stock_details(&self, symbol: &str) -> Result<Vec<StockDetails>> {
        match self.client.stock_details(symbol).await {
            Ok(details) => Ok(details),
            Err(TwsError::NoSecurity { .. }) => Ok(Vec::new()),
            Err(e) => Err(tws_error("contract details", e)),
        }
    }

    /// Requests in flight at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Uses these contract ids (from `reference_universe`) for their symbols.
    pub fn with_con_ids(mut self, con_ids: HashMap<Symbol, i64>) -> Self {
        self.con_ids = con_ids.into_iter().filter_map(|(s, id)| i32::try_from(id).ok().map(|id| (s, id))).collect();
        self
    }

    /// When the request for `session` ends: the close, or 20:00 New York with extended hours.
    fn request_end(&self, session: &Session) -> DateTime<Utc> {
        if self.regular_hours {
            return session.close;
        }
        let eight_pm = NaiveTime::from_hms_opt(20, 0, 0).unwrap_or(NaiveTime::MIN);
        session
            .date
            .and_time(eight_pm)
            .and_local_timezone(chrono_tz::America::New_York)
            .earliest()
            .map_or(session.close, |t| t.with_timezone(&Utc))
    }

    async fn head(&self, symbol: &str) -> std::result::Result<Option<DateTime<Utc>>, TwsError> {
        let cell = self.heads.lock().map_err(|_| other(symbol))?.entry(symbol.to_string()).or_default().clone();
        cell.get_or_try_init(|| self.client.head_timestamp(symbol, self.con_ids.get(symbol).copied())).await.copied()
    }

    /// One symbol-session's bars: none, without a request, before the symbol's first data (or at all
    /// when IB has none).
    async fn symbol_session(
        &self,
        symbol: &str,
        session: &Session,
        size: BarSize,
    ) -> std::result::Result<Vec<Bar>, TwsError> {
        match self.head(symbol).await? {
            Some(head) if self.request_end(session) > head => {}
            _ => return Ok(Vec::new()),
        }
        Ok(self.client.day_bars(symbol, self.con_ids.get(symbol).copied(), self.request_end(session), size).await?.bars)
    }
}

fn other(symbol: &str) -> TwsError {
    TwsError::Other { symbol: symbol.into(), detail: "internal lock poisoned".into() }
}

/// `quantlake check tws`: connect, handshake, current time, disconnect ([`client::check_connection`]).
pub async fn check_connection(settings: &TwsSettings) -> Result<ConnectionCheck> {
    client::check_connection(&settings.client_config()?).await.map_err(|e| tws_error("connect", e))
}

fn tws_error(request: &str, e: TwsError) -> Error {
    Error::Source { source_name: "tws".into(), request: request.into(), message: e.to_string() }
}

/// Errors that condemn one symbol, not the whole request.
fn is_symbol_fatal(e: &TwsError) -> bool {
    matches!(e, TwsError::NoSecurity { .. } | TwsError::Invalid { .. } | TwsError::NotSubscribed { .. })
}

impl BarSource for TwsSource {
    fn name(&self) -> &str {
        "tws"
    }

    fn request_metadata(&self) -> serde_json::Value {
        let c = self.client.config();
        serde_json::json!({ "what_to_show": "TRADES", "regular_hours": self.regular_hours, "exchange": c.exchange, "currency": c.currency })
    }

    async fn fetch(&self, symbols: &[Symbol], sessions: &[Session], size: BarSize) -> Result<Fetched> {
        let failed: Mutex<BTreeSet<Symbol>> = Mutex::new(BTreeSet::new());
        let is_failed = |s: &str| failed.lock().map(|f| f.contains(s)).unwrap_or(true);
        let requests: Vec<_> = symbols
            .iter()
            .flat_map(|symbol| sessions.iter().map(move |session| (symbol, session)))
            .map(|(symbol, session)| {
                let is_failed = &is_failed;
                async move {
                    // Fail fast per symbol: once IB refused it, its other sessions are not asked for.
                    if is_failed(symbol) {
                        return (symbol, None);
                    }
                    (symbol, Some(self.symbol_session(symbol, session, size).await))
                }
            })
            .collect();
        let mut results = futures::stream::iter(requests).buffered(self.concurrency);
        let mut by_symbol: HashMap<&Symbol, Vec<Bar>> = HashMap::new();
        let mut out = Fetched::default();
        while let Some((symbol, result)) = results.next().await {
            match result {
                None => {}
                Some(Ok(bars)) => by_symbol.entry(symbol).or_default().extend(bars),
                Some(Err(e)) if is_symbol_fatal(&e) => {
                    let first = failed.lock().map(|mut f| f.insert(symbol.clone())).unwrap_or(false);
                    if first {
                        out.failed.push(SymbolFailure { symbol: symbol.clone(), error: e.to_string() });
                    }
                }
                Some(Err(e)) => {
                    let (first, last) = (sessions[0].date, sessions[sessions.len() - 1].date);
                    return Err(tws_error(&format!("{} {} bars {first}..{last}", symbols.join(","), size.as_str()), e));
                }
            }
        }
        drop(results);
        let failed = failed.into_inner().unwrap_or_default();
        for symbol in symbols.iter().filter(|s| !failed.contains(*s)) {
            into_sessions(symbol, sessions, by_symbol.remove(symbol).unwrap_or_default(), &mut out);
        }
        Ok(out)
    }
}
