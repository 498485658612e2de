//! A protocol-level fake TWS / IB Gateway for tests.
//!
//! Listens on 127.0.0.1:0 and speaks the protobuf wire protocol that ibapi 5.5
//! uses: the `API\0` handshake, StartApi, NextValidId / ManagedAccounts, then
//! historical-data (220 → 217 + 308), head-timestamp (287 → 288) and
//! contract-details (209 → 210 + 252) requests,
//! answered from a [`Script`]. It checks IB's pacing rules itself and answers a
//! request that breaks one with error 162, recording a violation.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use quantlake::sources::tws::PacingRules;

// ---------------------------------------------------------------- wire messages
// Only the fields the fake reads or writes; tags match ibapi's protobuf.rs.

mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Contract {
        #[prost(int32, optional, tag = "1")]
        pub con_id: Option<i32>,
        #[prost(string, optional, tag = "2")]
        pub symbol: Option<String>,
        #[prost(string, optional, tag = "3")]
        pub sec_type: Option<String>,
        #[prost(string, optional, tag = "8")]
        pub exchange: Option<String>,
        #[prost(string, optional, tag = "9")]
        pub primary_exch: Option<String>,
        #[prost(string, optional, tag = "10")]
        pub currency: Option<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContractDataRequest {
        #[prost(int32, optional, tag = "1")]
        pub req_id: Option<i32>,
        #[prost(message, optional, tag = "2")]
        pub contract: Option<Contract>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContractDetails {
        #[prost(string, optional, tag = "7")]
        pub long_name: Option<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContractData {
        #[prost(int32, optional, tag = "1")]
        pub req_id: Option<i32>,
        #[prost(message, optional, tag = "2")]
        pub contract: Option<Contract>,
        #[prost(message, optional, tag = "3")]
        pub contract_details: Option<ContractDetails>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HistoricalDataRequest {
        #[prost(int32, optional, tag = "1")]
        pub req_id: Option<i32>,
        #[prost(message, optional, tag = "2")]
        pub contract: Option<Contract>,
        #[prost(string, optional, tag = "3")]
        pub end_date_time: Option<String>,
        #[prost(string, optional, tag = "4")]
        pub bar_size_setting: Option<String>,
        #[prost(string, optional, tag = "5")]
        pub duration: Option<String>,
        #[prost(bool, optional, tag = "6")]
        pub use_rth: Option<bool>,
        #[prost(string, optional, tag = "7")]
        pub what_to_show: Option<String>,
        #[prost(int32, optional, tag = "8")]
        pub format_date: Option<i32>,
        #[prost(bool, optional, tag = "9")]
        pub keep_up_to_date: Option<bool>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ReqIdOnly {
        #[prost(int32, optional, tag = "1")]
        pub req_id: Option<i32>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HeadTimestampRequest {
        #[prost(int32, optional, tag = "1")]
        pub req_id: Option<i32>,
        #[prost(message, optional, tag = "2")]
        pub contract: Option<Contract>,
        #[prost(bool, optional, tag = "3")]
        pub use_rth: Option<bool>,
        #[prost(string, optional, tag = "4")]
        pub what_to_show: Option<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HistoricalDataBar {
        #[prost(string, optional, tag = "1")]
        pub date: Option<String>,
        #[prost(double, optional, tag = "2")]
        pub open: Option<f64>,
        #[prost(double, optional, tag = "3")]
        pub high: Option<f64>,
        #[prost(double, optional, tag = "4")]
        pub low: Option<f64>,
        #[prost(double, optional, tag = "5")]
        pub close: Option<f64>,
        #[prost(string, optional, tag = "6")]
        pub volume: Option<String>,
        #[prost(string, optional, tag = "7")]
        pub wap: Option<String>,
        #[prost(int32, optional, tag = "8")]
        pub bar_count: Option<i32>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HistoricalData {
        #[prost(int32, optional, tag = "1")]
        pub req_id: Option<i32>,
        #[prost(message, repeated, tag = "2")]
        pub bars: Vec<HistoricalDataBar>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HistoricalDataEnd {
        #[prost(int32, optional, tag = "1")]
        pub req_id: Option<i32>,
        #[prost(string, optional, tag = "2")]
        pub start: Option<String>,
        #[prost(string, optional, tag = "3")]
        pub end: Option<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HeadTimestamp {
        #[prost(int32, optional, tag = "1")]
        pub req_id: Option<i32>,
        #[prost(string, optional, tag = "2")]
        pub head_timestamp: Option<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ErrorMessage {
        #[prost(int32, optional, tag = "1")]
        pub id: Option<i32>,
        #[prost(int64, optional, tag = "2")]
        pub error_time: Option<i64>,
        #[prost(int32, optional, tag = "3")]
        pub error_code: Option<i32>,
        #[prost(string, optional, tag = "4")]
        pub error_msg: Option<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NextValidId {
        #[prost(int32, optional, tag = "1")]
        pub order_id: Option<i32>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CurrentTime {
        #[prost(int64, optional, tag = "1")]
        pub current_time: Option<i64>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ManagedAccounts {
        #[prost(string, optional, tag = "1")]
        pub accounts_list: Option<String>,
    }
}

const IN_START_API: i32 = 271;
const IN_HISTORICAL_DATA_REQUEST: i32 = 220;
const IN_CANCEL_HISTORICAL_DATA: i32 = 225;
const IN_HEAD_TIMESTAMP_REQUEST: i32 = 287;
/// reqContractDetails (9) and its answers ContractData (10) and ContractDataEnd (52), protobuf ids.
const IN_CONTRACT_DATA_REQUEST: i32 = 209;
const OUT_CONTRACT_DATA: i32 = 210;
const OUT_CONTRACT_DATA_END: i32 = 252;
const OUT_ERROR: i32 = 204;
const OUT_NEXT_VALID_ID: i32 = 209;
const OUT_MANAGED_ACCOUNTS: i32 = 215;
const OUT_HISTORICAL_DATA: i32 = 217;
const OUT_HEAD_TIMESTAMP: i32 = 288;
/// reqCurrentTime (49) and its answer, with the protobuf offset (200) both ways.
const IN_CURRENT_TIME_REQUEST: i32 = 249;
const OUT_CURRENT_TIME: i32 = 249;
const OUT_HISTORICAL_DATA_END: i32 = 308;
const SERVER_VERSION: i32 = 226;
const MAX_FRAME: u32 = 0xFF_FFFF;

/// Text of IB's pacing-violation 162 (the request id is appended).
pub const PACING_TEXT: &str = "Historical Market Data Service error message:API historical data query cancelled: ";
/// Text of IB's no-data 162.
pub const NO_DATA_TEXT: &str = "Historical Market Data Service error message:HMDS query returned no data";

fn frame(msg_id: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&((payload.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&msg_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn error_frame(id: i32, code: i32, message: &str) -> Vec<u8> {
    let msg = wire::ErrorMessage {
        id: Some(id),
        error_time: Some(Utc::now().timestamp_millis()),
        error_code: Some(code),
        error_msg: Some(message.to_string()),
    };
    frame(OUT_ERROR, &msg.encode_to_vec())
}

// ---------------------------------------------------------------- New York time

/// New York wall clock on `date` at `h:m` as UTC.
pub fn ny_to_utc(date: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    let local = NaiveDateTime::new(date, NaiveTime::from_hms_opt(h, m, 0).unwrap());
    New_York.from_local_datetime(&local).earliest().unwrap().with_timezone(&Utc)
}

/// The New York calendar date of a UTC instant.
pub fn ny_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&New_York).date_naive()
}

/// Regular-session close (16:00 New York) of `date`, in UTC.
pub fn session_close_utc(date: NaiveDate) -> DateTime<Utc> {
    ny_to_utc(date, 16, 0)
}

// ---------------------------------------------------------------- script

/// One scripted bar; `time` is the bar start in epoch seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeBar {
    pub time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub wap: Option<f64>,
    pub count: Option<i32>,
}

/// How the fake answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// HistoricalData (217) with these bars, then HistoricalDataEnd (308).
    Bars(Vec<FakeBar>),
    /// ErrorMessage (204) bound to the request id.
    Error { code: i32, message: String },
    /// Close the client's socket on this request.
    Disconnect,
    /// Send the first half of the HistoricalData frame, then close the socket.
    DisconnectMidStream,
    /// Never answer.
    Silent,
    /// Daily bars: HistoricalData with `YYYYMMDD` dates (New York date of `time`), then the end.
    DailyBars(Vec<FakeBar>),
}

impl Reply {
    pub fn error(code: i32, message: &str) -> Self {
        Reply::Error { code, message: message.to_string() }
    }
    /// IB's 162 pacing violation ("query cancelled").
    pub fn pacing() -> Self {
        Reply::error(162, PACING_TEXT.trim_end_matches(": "))
    }
    /// IB's 162 "HMDS query returned no data".
    pub fn no_data() -> Self {
        Reply::error(162, NO_DATA_TEXT)
    }
}

/// The fake's answers. Replies are keyed by (symbol, key) where key is the raw
/// `end_date_time` string of the request (e.g. `"20240102 21:00:00 UTC"`), or the
/// New York date of that end (`"2024-01-02"`), or `"head"` for head-timestamp
/// requests. Each key holds a queue: successive requests pop successive replies;
/// once empty, the default applies (deterministic bars for weekdays, 162 no data
/// for weekends).
#[derive(Clone, Debug, Default)]
pub struct Script {
    replies: HashMap<(String, String), VecDeque<Reply>>,
    head: HashMap<String, i64>,
    known: Option<HashSet<String>>,
    /// Contract details by symbol: (contract id, long name, primary exchange).
    details: HashMap<String, (i32, String, String)>,
}

impl Script {
    /// Every symbol is known and gets default bars.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only these symbols are known; any other symbol is answered with 200.
    pub fn with_symbols<I: IntoIterator<Item = S>, S: Into<String>>(symbols: I) -> Self {
        Self { known: Some(symbols.into_iter().map(Into::into).collect()), ..Self::default() }
    }

    /// Queue `reply` for `symbol` and `key` (raw end string, New York date `YYYY-MM-DD`, or `"head"`).
    pub fn push(&mut self, symbol: &str, key: &str, reply: Reply) -> &mut Self {
        self.replies.entry((symbol.to_string(), key.to_string())).or_default().push_back(reply);
        if let Some(known) = &mut self.known {
            known.insert(symbol.to_string());
        }
        self
    }

    /// The contract details reported for `symbol` (default: an id hashed from the symbol, the name
    /// `<SYMBOL> Inc`, NASDAQ).
    pub fn contract(&mut self, symbol: &str, con_id: i32, long_name: &str, primary_exchange: &str) -> &mut Self {
        self.details.insert(symbol.to_string(), (con_id, long_name.to_string(), primary_exchange.to_string()));
        self
    }

    /// Earliest data point reported for `symbol` (epoch seconds).
    pub fn head_timestamp(&mut self, symbol: &str, epoch_seconds: i64) -> &mut Self {
        self.head.insert(symbol.to_string(), epoch_seconds);
        self
    }

    fn is_known(&self, symbol: &str) -> bool {
        self.known.as_ref().is_none_or(|k| k.contains(symbol))
    }

    fn pop(&mut self, symbol: &str, key: &str) -> Option<Reply> {
        let q = self.replies.get_mut(&(symbol.to_string(), key.to_string()))?;
        q.pop_front()
    }

    /// The daily bar of some minute bars, stamped with the first bar's time.
    pub fn daily_bar(minute: &[FakeBar]) -> FakeBar {
        FakeBar {
            time: minute[0].time,
            open: minute[0].open,
            high: minute.iter().map(|b| b.high).fold(f64::MIN, f64::max),
            low: minute.iter().map(|b| b.low).fold(f64::MAX, f64::min),
            close: minute[minute.len() - 1].close,
            volume: minute.iter().map(|b| b.volume).sum(),
            wap: None,
            count: Some(minute.iter().filter_map(|b| b.count).sum()),
        }
    }

    /// The deterministic bars the fake serves by default for `symbol` on the New
    /// York session of `date`: 390 one-minute bars 09:30-16:00 (regular hours) or
    /// 960 bars 04:00-20:00 (extended). Empty on weekends.
    pub fn default_bars(symbol: &str, date: NaiveDate, regular_hours: bool) -> Vec<FakeBar> {
        if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            return Vec::new();
        }
        let (start, n) = if regular_hours { (ny_to_utc(date, 9, 30), 390) } else { (ny_to_utc(date, 4, 0), 960) };
        let seed = symbol.bytes().fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
        let base = 20.0 + (seed % 400) as f64 + (date.ordinal() % 10) as f64;
        (0..n)
            .map(|i| {
                let i64_ = i as i64;
                let open = base + ((i * 7 + seed as usize) % 50) as f64 * 0.01;
                let close = open + ((i % 3) as f64 - 1.0) * 0.01;
                FakeBar {
                    time: start.timestamp() + 60 * i64_,
                    open,
                    high: open.max(close) + 0.05,
                    low: open.min(close) - 0.05,
                    close,
                    volume: (100 + (i % 17) * 10) as f64,
                    wap: Some(((open + close) / 2.0 * 10000.0).round() / 10000.0),
                    count: Some(10 + (i % 5) as i32),
                }
            })
            .collect()
    }
}

// ---------------------------------------------------------------- fake server

/// A historical request as the fake received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub connection: usize,
    pub symbol: String,
    /// The contract id sent (0 when none).
    pub con_id: i32,
    pub exchange: String,
    pub end_date_time: String,
    pub bar_size: String,
    pub duration: String,
    pub use_rth: bool,
    pub what_to_show: String,
    pub received: Instant,
}

enum Out {
    Frame(Vec<u8>),
    /// Write these raw bytes, then close the socket.
    RawThenClose(Vec<u8>),
    Close,
}

struct Sent {
    at: Instant,
    contract: String,
    identical: String,
}

struct State {
    script: Script,
    requests: Vec<RecordedRequest>,
    violations: Vec<String>,
    sent: Vec<Sent>,
    open: HashSet<(usize, i32)>,
    clients: HashMap<usize, mpsc::UnboundedSender<Out>>,
}

struct Inner {
    rules: PacingRules,
    tolerance: Duration,
    state: Mutex<State>,
    connections: AtomicUsize,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// The running fake; dropping it stops it.
pub struct FakeTws {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

/// IB's pacing rules scaled for tests: windows times 0.005 (15 s -> 75 ms, 10 min -> 3 s), except the
/// per-contract window, 2 s -> 100 ms: at 10 ms, a few ms of scheduling delay on a loaded 2-core
/// machine between the client's sends and the fake's receipts bunched paced requests into a violation.
pub fn test_pacing() -> quantlake::sources::tws::PacingRules {
    quantlake::sources::tws::PacingRules {
        per_contract_window: Duration::from_millis(100),
        ..quantlake::sources::tws::PacingRules::default().scaled(0.005)
    }
}

/// Default slack the fake grants when measuring pacing, for scheduling jitter
/// between the client's send and the fake's receive (each window is shrunk by
/// at most this, and by at most half the window).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_millis(20);

impl FakeTws {
    /// Start listening on 127.0.0.1 with an ephemeral port.
    pub async fn start(script: Script, rules: PacingRules) -> FakeTws {
        Self::start_with_tolerance(script, rules, DEFAULT_TOLERANCE).await
    }

    pub async fn start_with_tolerance(script: Script, rules: PacingRules, tolerance: Duration) -> FakeTws {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake TWS");
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            rules,
            tolerance,
            state: Mutex::new(State {
                script,
                requests: Vec::new(),
                violations: Vec::new(),
                sent: Vec::new(),
                open: HashSet::new(),
                clients: HashMap::new(),
            }),
            connections: AtomicUsize::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        let accept_inner = Arc::clone(&inner);
        let handle = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let conn = accept_inner.connections.fetch_add(1, Ordering::SeqCst) + 1;
                let inner = Arc::clone(&accept_inner);
                let task = tokio::spawn(async move {
                    if let Err(e) = serve(inner, conn, stream).await {
                        tracing::debug!(conn, "fake TWS connection ended: {e}");
                    }
                });
                accept_inner.tasks.lock().unwrap().push(task.abort_handle());
            }
        });
        inner.tasks.lock().unwrap().push(handle.abort_handle());
        FakeTws { addr, inner }
    }

    /// Every historical-data request received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.state.lock().unwrap().requests.clone()
    }

    /// Pacing violations seen (each was answered with 162).
    pub fn violations(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().violations.clone()
    }

    /// Connections accepted so far (reconnects included).
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::SeqCst)
    }

    /// Send an unbound notice (id -1), e.g. 1100 / 1101 / 1102, to every client.
    pub async fn send_notice(&self, code: i32, msg: &str) {
        let bytes = error_frame(-1, code, msg);
        let state = self.inner.state.lock().unwrap();
        for tx in state.clients.values() {
            let _ = tx.send(Out::Frame(bytes.clone()));
        }
    }

    /// Stop accepting and close every connection.
    pub fn stop(&self) {
        for h in self.inner.tasks.lock().unwrap().drain(..) {
            h.abort();
        }
        self.inner.state.lock().unwrap().clients.clear();
    }
}

impl Drop for FakeTws {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn read_frame(r: &mut OwnedReadHalf) -> std::io::Result<Vec<u8>> {
    let len = r.read_u32().await?;
    if !(4..=MAX_FRAME).contains(&len) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad frame length {len}")));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn writer(mut w: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Out>, closed: Arc<Notify>) {
    while let Some(out) = rx.recv().await {
        let res = match out {
            Out::Frame(bytes) => w.write_all(&bytes).await,
            Out::RawThenClose(bytes) => {
                let _ = w.write_all(&bytes).await;
                let _ = w.flush().await;
                break;
            }
            Out::Close => break,
        };
        if res.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
    closed.notify_one();
}

async fn serve(inner: Arc<Inner>, conn: usize, stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (mut r, mut w) = stream.into_split();

    // Handshake: "API\0" then a frame "v213..226".
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic).await?;
    if &magic != b"API\0" {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "missing API prefix"));
    }
    let versions = read_frame(&mut r).await?;
    tracing::debug!(conn, versions = %String::from_utf8_lossy(&versions), "fake TWS handshake");
    let ack = format!("{SERVER_VERSION}\0{}\0", "20240120 09:30:00 EST");
    let mut packet = (ack.len() as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(ack.as_bytes());
    w.write_all(&packet).await?;

    // StartApi, then NextValidId + ManagedAccounts.
    loop {
        let body = read_frame(&mut r).await?;
        if i32::from_be_bytes(body[..4].try_into().unwrap()) == IN_START_API {
            break;
        }
    }
    w.write_all(&frame(OUT_NEXT_VALID_ID, &wire::NextValidId { order_id: Some(1) }.encode_to_vec())).await?;
    w.write_all(&frame(
        OUT_MANAGED_ACCOUNTS,
        &wire::ManagedAccounts { accounts_list: Some("DU1234567".into()) }.encode_to_vec(),
    ))
    .await?;

    let (tx, rx) = mpsc::unbounded_channel();
    let closed = Arc::new(Notify::new());
    let writer_task = tokio::spawn(writer(w, rx, Arc::clone(&closed)));
    inner.tasks.lock().unwrap().push(writer_task.abort_handle());
    inner.state.lock().unwrap().clients.insert(conn, tx.clone());

    let result = loop {
        let body = tokio::select! {
            b = read_frame(&mut r) => b,
            _ = closed.notified() => break Ok(()),
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => break Err(e),
        };
        let msg_id = i32::from_be_bytes(body[..4].try_into().unwrap());
        let payload = &body[4..];
        match msg_id {
            IN_HISTORICAL_DATA_REQUEST => match wire::HistoricalDataRequest::decode(payload) {
                Ok(req) => on_historical(&inner, conn, &tx, req),
                Err(e) => tracing::warn!("fake TWS: bad HistoricalDataRequest: {e}"),
            },
            IN_CONTRACT_DATA_REQUEST => match wire::ContractDataRequest::decode(payload) {
                Ok(req) => on_contract_data(&inner, &tx, req),
                Err(e) => tracing::warn!("fake TWS: bad ContractDataRequest: {e}"),
            },
            IN_HEAD_TIMESTAMP_REQUEST => match wire::HeadTimestampRequest::decode(payload) {
                Ok(req) => on_head_timestamp(&inner, conn, &tx, req),
                Err(e) => tracing::warn!("fake TWS: bad HeadTimestampRequest: {e}"),
            },
            IN_CURRENT_TIME_REQUEST => {
                let now = wire::CurrentTime { current_time: Some(Utc::now().timestamp()) };
                let _ = tx.send(Out::Frame(frame(OUT_CURRENT_TIME, &now.encode_to_vec())));
            }
            IN_CANCEL_HISTORICAL_DATA => {
                if let Ok(c) = wire::ReqIdOnly::decode(payload) {
                    inner.state.lock().unwrap().open.remove(&(conn, c.req_id.unwrap_or_default()));
                }
            }
            other => tracing::debug!(conn, other, "fake TWS ignores message"),
        }
    };
    let mut state = inner.state.lock().unwrap();
    state.clients.remove(&conn);
    state.open.retain(|(c, _)| *c != conn);
    drop(state);
    let _ = tx.send(Out::Close);
    result
}

/// Checks IB's rules for a request received now; returns the broken rule, if any.
fn check_pacing(inner: &Inner, state: &State, now: Instant, contract: &str, identical: &str) -> Option<String> {
    let rules = &inner.rules;
    let shrink = |w: Duration| w.saturating_sub(inner.tolerance.min(w / 2));
    let within = |at: Instant, w: Duration| now.saturating_duration_since(at) < shrink(w);
    if !rules.identical_gap.is_zero()
        && let Some(prev) =
            state.sent.iter().rev().find(|s| s.identical == identical && within(s.at, rules.identical_gap))
    {
        return Some(format!(
            "identical request {identical} within {:?} (previous {:?} ago)",
            rules.identical_gap,
            now - prev.at
        ));
    }
    if !rules.per_contract_window.is_zero() {
        let n = state.sent.iter().filter(|s| s.contract == contract && within(s.at, rules.per_contract_window)).count();
        if n >= rules.per_contract_max {
            return Some(format!("{} requests for {contract} within {:?}", n + 1, rules.per_contract_window));
        }
    }
    if !rules.window.is_zero() {
        let n = state.sent.iter().filter(|s| within(s.at, rules.window)).count();
        if n >= rules.window_max {
            return Some(format!("{} requests within {:?}", n + 1, rules.window));
        }
    }
    let open = state.open.len();
    if open >= rules.max_open {
        return Some(format!("{} open historical requests (max {})", open + 1, rules.max_open));
    }
    None
}

fn on_historical(inner: &Arc<Inner>, conn: usize, tx: &mpsc::UnboundedSender<Out>, req: wire::HistoricalDataRequest) {
    let now = Instant::now();
    let req_id = req.req_id.unwrap_or_default();
    let contract = req.contract.unwrap_or_default();
    let con_id = contract.con_id.unwrap_or_default();
    let symbol = contract.symbol.unwrap_or_default();
    let exchange = contract.exchange.unwrap_or_default();
    let end = req.end_date_time.unwrap_or_default();
    let bar_size = req.bar_size_setting.unwrap_or_default();
    let bar_size_text = bar_size.clone();
    let duration = req.duration.unwrap_or_default();
    let what = req.what_to_show.unwrap_or_default();
    let use_rth = req.use_rth.unwrap_or(false);
    let contract_key = format!("{symbol}@{exchange}/{what}");
    let identical_key = format!("{symbol}@{exchange}|{end}|{bar_size}|{duration}|{what}|{use_rth}");

    let mut state = inner.state.lock().unwrap();
    state.requests.push(RecordedRequest {
        connection: conn,
        symbol: symbol.clone(),
        con_id,
        exchange,
        end_date_time: end.clone(),
        bar_size,
        duration,
        use_rth,
        what_to_show: what,
        received: now,
    });
    let violation = check_pacing(inner, &state, now, &contract_key, &identical_key);
    state.sent.push(Sent { at: now, contract: contract_key, identical: identical_key });
    let horizon = inner.rules.window.max(inner.rules.identical_gap).max(inner.rules.per_contract_window);
    state.sent.retain(|s| now.saturating_duration_since(s.at) <= horizon);

    let reply = if !state.script.is_known(&symbol) {
        Reply::error(200, "No security definition has been found for the request")
    } else if let Some(v) = violation {
        tracing::warn!(conn, req_id, "fake TWS pacing violation: {v}");
        state.violations.push(v);
        Reply::error(162, &format!("{PACING_TEXT}{req_id}"))
    } else {
        let end_utc = parse_end(&end);
        let date = end_utc.map(ny_date);
        let scripted = state
            .script
            .pop(&symbol, &end)
            .or_else(|| date.and_then(|d| state.script.pop(&symbol, &d.format("%Y-%m-%d").to_string())));
        match scripted {
            Some(r) => r,
            None => match date {
                Some(d) => {
                    let bars = Script::default_bars(&symbol, d, use_rth);
                    if bars.is_empty() {
                        Reply::no_data()
                    } else if bar_size_text == "1 day" {
                        Reply::DailyBars(vec![Script::daily_bar(&bars)])
                    } else {
                        Reply::Bars(bars)
                    }
                }
                None => Reply::error(321, &format!("Error validating request: bad end date/time '{end}'")),
            },
        }
    };
    state.open.insert((conn, req_id));
    drop(state);
    apply(Arc::clone(inner), conn, tx.clone(), req_id, end, reply);
}

fn on_head_timestamp(
    inner: &Arc<Inner>,
    conn: usize,
    tx: &mpsc::UnboundedSender<Out>,
    req: wire::HeadTimestampRequest,
) {
    let req_id = req.req_id.unwrap_or_default();
    let symbol = req.contract.and_then(|c| c.symbol).unwrap_or_default();
    let mut state = inner.state.lock().unwrap();
    let reply = if !state.script.is_known(&symbol) {
        Reply::error(200, "No security definition has been found for the request")
    } else if let Some(r) = state.script.pop(&symbol, "head") {
        r
    } else {
        let ts = state.script.head.get(&symbol).copied().unwrap_or(946_909_800); // 2000-01-03 14:30 UTC
        drop(state);
        let msg = wire::HeadTimestamp { req_id: Some(req_id), head_timestamp: Some(ts.to_string()) };
        let _ = tx.send(Out::Frame(frame(OUT_HEAD_TIMESTAMP, &msg.encode_to_vec())));
        return;
    };
    drop(state);
    apply(Arc::clone(inner), conn, tx.clone(), req_id, String::new(), reply);
}

/// reqContractDetails: one ContractData for a known stock, then ContractDataEnd; 200 for an unknown one.
fn on_contract_data(inner: &Arc<Inner>, tx: &mpsc::UnboundedSender<Out>, req: wire::ContractDataRequest) {
    let req_id = req.req_id.unwrap_or_default();
    let asked = req.contract.unwrap_or_default();
    let symbol = asked.symbol.clone().unwrap_or_default();
    let state = inner.state.lock().unwrap();
    if !state.script.is_known(&symbol) {
        let _ = tx.send(Out::Frame(error_frame(req_id, 200, "No security definition has been found for the request")));
        return;
    }
    let (con_id, name, primary) = state.script.details.get(&symbol).cloned().unwrap_or_else(|| {
        let id = symbol.bytes().fold(7i32, |h, b| h.wrapping_mul(31).wrapping_add(i32::from(b))).rem_euclid(1 << 30);
        (id, format!("{symbol} Inc"), "NASDAQ".to_string())
    });
    drop(state);
    let data = wire::ContractData {
        req_id: Some(req_id),
        contract: Some(wire::Contract {
            con_id: Some(con_id),
            symbol: Some(symbol),
            sec_type: Some("STK".into()),
            exchange: asked.exchange,
            primary_exch: Some(primary),
            currency: asked.currency,
        }),
        contract_details: Some(wire::ContractDetails { long_name: Some(name) }),
    };
    let _ = tx.send(Out::Frame(frame(OUT_CONTRACT_DATA, &data.encode_to_vec())));
    let end = wire::ReqIdOnly { req_id: Some(req_id) };
    let _ = tx.send(Out::Frame(frame(OUT_CONTRACT_DATA_END, &end.encode_to_vec())));
}

/// `"YYYYMMDD HH:MM:SS UTC"` (or `YYYYMMDD-HH:MM:SS`) → UTC.
fn parse_end(end: &str) -> Option<DateTime<Utc>> {
    let s = end.trim().trim_end_matches(" UTC").trim();
    NaiveDateTime::parse_from_str(s, "%Y%m%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y%m%d-%H:%M:%S"))
        .ok()
        .map(|n| Utc.from_utc_datetime(&n))
}

fn bars_frame(req_id: i32, bars: &[FakeBar], daily: bool) -> Vec<u8> {
    let msg = wire::HistoricalData {
        req_id: Some(req_id),
        bars: bars
            .iter()
            .map(|b| wire::HistoricalDataBar {
                date: Some(if daily {
                    ny_date(DateTime::from_timestamp(b.time, 0).unwrap()).format("%Y%m%d").to_string()
                } else {
                    b.time.to_string()
                }),
                open: Some(b.open),
                high: Some(b.high),
                low: Some(b.low),
                close: Some(b.close),
                volume: Some(b.volume.to_string()),
                wap: b.wap.map(|w| w.to_string()),
                bar_count: b.count,
            })
            .collect(),
    };
    frame(OUT_HISTORICAL_DATA, &msg.encode_to_vec())
}

fn apply(inner: Arc<Inner>, conn: usize, tx: mpsc::UnboundedSender<Out>, req_id: i32, end: String, reply: Reply) {
    let answered = |inner: &Inner| {
        inner.state.lock().unwrap().open.remove(&(conn, req_id));
    };
    let daily = matches!(reply, Reply::DailyBars(_));
    match reply {
        Reply::Bars(bars) | Reply::DailyBars(bars) => {
            let end_utc = parse_end(&end).unwrap_or_else(Utc::now);
            let start_utc = end_utc - chrono::Duration::days(1);
            let fmt = "%Y%m%d-%H:%M:%S";
            let done = wire::HistoricalDataEnd {
                req_id: Some(req_id),
                start: Some(start_utc.format(fmt).to_string()),
                end: Some(end_utc.format(fmt).to_string()),
            };
            answered(&inner);
            let _ = tx.send(Out::Frame(bars_frame(req_id, &bars, daily)));
            let _ = tx.send(Out::Frame(frame(OUT_HISTORICAL_DATA_END, &done.encode_to_vec())));
        }
        Reply::Error { code, message } => {
            answered(&inner);
            let _ = tx.send(Out::Frame(error_frame(req_id, code, &message)));
        }
        Reply::Disconnect => {
            let _ = tx.send(Out::Close);
        }
        Reply::DisconnectMidStream => {
            let bars = Script::default_bars("MIDSTREAM", NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(), true);
            let bytes = bars_frame(req_id, &bars, false);
            let half = bytes[..bytes.len() / 2].to_vec();
            let _ = tx.send(Out::RawThenClose(half));
        }
        Reply::Silent => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_york_time_helpers() {
        let winter = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        let summer = NaiveDate::from_ymd_opt(2024, 7, 2).unwrap();
        assert_eq!(session_close_utc(winter).to_rfc3339(), "2024-01-02T21:00:00+00:00");
        assert_eq!(session_close_utc(summer).to_rfc3339(), "2024-07-02T20:00:00+00:00");
        assert_eq!(ny_date(session_close_utc(summer)), summer);
    }

    #[test]
    fn default_bars_cover_the_session() {
        let d = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        let bars = Script::default_bars("AAPL", d, true);
        assert_eq!(bars.len(), 390);
        assert_eq!(bars[0].time, ny_to_utc(d, 9, 30).timestamp());
        assert_eq!(bars[389].time + 60, session_close_utc(d).timestamp());
        assert_eq!(bars, Script::default_bars("AAPL", d, true), "deterministic");
        assert_eq!(Script::default_bars("AAPL", d, false).len(), 960);
        assert!(Script::default_bars("AAPL", NaiveDate::from_ymd_opt(2024, 1, 6).unwrap(), true).is_empty());
    }

    #[test]
    fn end_string_parses() {
        assert_eq!(parse_end("20240102 21:00:00 UTC").unwrap().to_rfc3339(), "2024-01-02T21:00:00+00:00");
        assert!(parse_end("").is_none());
    }
}
