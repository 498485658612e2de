//! The real ibapi client (through TwsClient) against the protocol-level fake TWS: the error policy
//! per IB code, reconnects, timeouts, notices.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone, Utc};
use quantlake::sources::BarSize;
use quantlake::sources::tws::{Pacer, PacingRules, TwsClient, TwsConfig, TwsError};

use crate::fake_tws::{FakeBar, FakeTws, Reply, Script, session_close_utc, test_pacing};

const SCALE: f64 = 0.01; // identical gap 150 ms, per-contract 20 ms, window 6 s

fn cfg(fake: &FakeTws) -> TwsConfig {
    TwsConfig {
        host: "127.0.0.1".into(),
        port: fake.addr.port(),
        client_id: 7,
        timeout: Duration::from_secs(5),
        regular_hours: true,
        exchange: "SMART".into(),
        currency: "USD".into(),
        max_retries: 3,
        reconnect_attempts: 3,
    }
}

fn rules() -> PacingRules {
    PacingRules::default().scaled(SCALE)
}

async fn setup(script: Script) -> (FakeTws, TwsClient) {
    let fake = FakeTws::start(script, rules()).await;
    let client = TwsClient::connect(cfg(&fake), Arc::new(Pacer::new(rules()))).await.expect("connect");
    (fake, client)
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, d).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_and_default_bars_come_back_exactly() {
    let scripted = vec![
        FakeBar {
            time: 1_704_205_800,
            open: 185.5,
            high: 186.25,
            low: 185.0,
            close: 186.0,
            volume: 12345.0,
            wap: Some(185.7),
            count: Some(321),
        },
        FakeBar {
            time: 1_704_205_860,
            open: 186.0,
            high: 186.5,
            low: 185.75,
            close: 186.125,
            volume: 0.5,
            wap: None,
            count: None,
        },
    ];
    let mut script = Script::new();
    script.push("AAPL", "2024-01-02", Reply::Bars(scripted.clone()));
    let (fake, client) = setup(script).await;

    let got = client.day_bars("AAPL", Some(265598), session_close_utc(day(2)), BarSize::Minute).await.unwrap();
    assert!(!got.no_data);
    assert_eq!(got.bars.len(), 2);
    for (g, s) in got.bars.iter().zip(&scripted) {
        assert_eq!(g.ts.timestamp(), s.time);
        assert_eq!((g.open, g.high, g.low, g.close, g.volume), (s.open, s.high, s.low, s.close, s.volume));
        assert_eq!(g.vwap, s.wap);
        assert_eq!(g.trade_count, s.count.map(i64::from));
    }

    // default generator: 390 regular-hours bars of the requested session
    let got = client.day_bars("MSFT", None, session_close_utc(day(3)), BarSize::Minute).await.unwrap();
    let expected = Script::default_bars("MSFT", day(3), true);
    assert_eq!(got.bars.len(), 390);
    for (g, s) in got.bars.iter().zip(&expected) {
        assert_eq!(g.ts.timestamp(), s.time);
        assert_eq!(
            (g.open, g.close, g.volume, g.vwap, g.trade_count),
            (s.open, s.close, s.volume, s.wap, s.count.map(i64::from))
        );
    }
    assert_eq!(got.bars[0].ts, Utc.with_ymd_and_hms(2024, 1, 3, 14, 30, 0).unwrap());

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let r = &reqs[0];
    assert_eq!(
        (
            r.symbol.as_str(),
            r.exchange.as_str(),
            r.end_date_time.as_str(),
            r.bar_size.as_str(),
            r.duration.as_str(),
            r.use_rth,
            r.what_to_show.as_str()
        ),
        ("AAPL", "SMART", "20240102 21:00:00 UTC", "1 min", "1 D", true, "TRADES")
    );
    assert!(fake.violations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_hours_flag_is_sent() {
    let fake = FakeTws::start(Script::new(), rules()).await;
    let client = TwsClient::connect(TwsConfig { regular_hours: false, ..cfg(&fake) }, Arc::new(Pacer::new(rules())))
        .await
        .unwrap();
    let got = client.day_bars("SPY", None, session_close_utc(day(4)), BarSize::Minute).await.unwrap();
    assert_eq!(got.bars.len(), 960);
    assert!(!fake.requests()[0].use_rth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_162_is_retried_after_a_penalty() {
    let mut script = Script::new();
    script.push("AAPL", "2024-01-02", Reply::pacing());
    let (fake, client) = setup(script).await;
    let t0 = Instant::now();
    let got = client.day_bars("AAPL", None, session_close_utc(day(2)), BarSize::Minute).await.unwrap();
    assert_eq!(got.bars.len(), 390);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "one 162, one retry");
    let gap = reqs[1].received.duration_since(reqs[0].received);
    assert!(gap >= rules().identical_gap, "retry came after the penalty, gap {gap:?}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_retries_are_bounded() {
    let mut script = Script::new();
    for _ in 0..5 {
        script.push("AAPL", "2024-01-02", Reply::pacing());
    }
    let fake = FakeTws::start(script, rules()).await;
    let client =
        TwsClient::connect(TwsConfig { max_retries: 2, ..cfg(&fake) }, Arc::new(Pacer::new(rules()))).await.unwrap();
    let err = client.day_bars("AAPL", None, session_close_utc(day(2)), BarSize::Minute).await.unwrap_err();
    assert!(matches!(err, TwsError::Other { .. }), "{err:?}");
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_162_and_weekend_give_empty_days() {
    let mut script = Script::new();
    script.push("AAPL", "2024-01-02", Reply::no_data());
    script.push(
        "AAPL",
        "2024-01-03",
        Reply::error(165, "Historical Market Data Service query message:no items retrieved"),
    );
    let (fake, client) = setup(script).await;
    let got = client.day_bars("AAPL", None, session_close_utc(day(2)), BarSize::Minute).await.unwrap();
    assert!(got.no_data && got.bars.is_empty());
    let got = client.day_bars("AAPL", None, session_close_utc(day(3)), BarSize::Minute).await.unwrap();
    assert!(got.no_data && got.bars.is_empty());
    let got = client.day_bars("AAPL", None, session_close_utc(day(6)), BarSize::Minute).await.unwrap(); // Saturday
    assert!(got.no_data);
    assert_eq!(fake.requests().len(), 3, "no retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_symbol_fails_fast_with_no_security() {
    let (fake, client) = setup(Script::with_symbols(["AAPL"])).await;
    let t0 = Instant::now();
    let err = client.day_bars("NOPE", None, session_close_utc(day(2)), BarSize::Minute).await.unwrap_err();
    assert!(matches!(err, TwsError::NoSecurity { .. }), "{err:?}");
    assert!(err.to_string().contains("no security definition (IB 200)"));
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(fake.requests().len(), 1, "no retry");
    let err = client.head_timestamp("NOPE", None).await.unwrap_err();
    assert!(matches!(err, TwsError::NoSecurity { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_permission_errors_fail_fast() {
    let mut script = Script::new();
    script.push("AAPL", "2024-01-02", Reply::error(321, "Error validating request.-'bP' : cause - Invalid bar size"));
    script.push("AAPL", "2024-01-03", Reply::error(354, "Requested market data is not subscribed."));
    script.push(
        "AAPL",
        "2024-01-04",
        Reply::error(162, "Historical Market Data Service error message:No market data permissions for NYSE STK"),
    );
    let (fake, client) = setup(script).await;
    let e = client.day_bars("AAPL", None, session_close_utc(day(2)), BarSize::Minute).await.unwrap_err();
    assert!(matches!(e, TwsError::Invalid { .. }), "{e:?}");
    let e = client.day_bars("AAPL", None, session_close_utc(day(3)), BarSize::Minute).await.unwrap_err();
    assert!(matches!(e, TwsError::NotSubscribed { code: 354, .. }), "{e:?}");
    let e = client.day_bars("AAPL", None, session_close_utc(day(4)), BarSize::Minute).await.unwrap_err();
    assert!(matches!(e, TwsError::NotSubscribed { code: 162, .. }), "{e:?}");
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_on_request_reconnects_and_resends() {
    let mut script = Script::new();
    script.push("AAPL", "2024-01-02", Reply::Disconnect);
    script.push("AAPL", "2024-01-03", Reply::DisconnectMidStream);
    let (fake, client) = setup(script).await;
    let got = client.day_bars("AAPL", None, session_close_utc(day(2)), BarSize::Minute).await.unwrap();
    assert_eq!(got.bars.len(), 390);
    assert_eq!(fake.connections(), 2);
    let got = client.day_bars("AAPL", None, session_close_utc(day(3)), BarSize::Minute).await.unwrap();
    assert_eq!(got.bars.len(), 390);
    assert_eq!(fake.connections(), 3);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 4, "each day sent once per session: {reqs:?}");
    // the re-send went through the pacer: identical request not within the gap
    assert!(reqs[1].received.duration_since(reqs[0].received) >= rules().identical_gap);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_with_server_gone_is_a_clear_error() {
    let mut script = Script::new();
    script.push("AAPL", "2024-01-02", Reply::Disconnect);
    let fake = FakeTws::start(script, rules()).await;
    let client = TwsClient::connect(TwsConfig { reconnect_attempts: 2, ..cfg(&fake) }, Arc::new(Pacer::new(rules())))
        .await
        .unwrap();
    // stop accepting: the listener goes away with the accept task
    let port = fake.addr.port();
    let fetch = client.day_bars("AAPL", None, session_close_utc(day(2)), BarSize::Minute);
    let stopper = async {
        while fake.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        fake.stop();
    };
    let t0 = Instant::now();
    let (res, ()) = tokio::join!(fetch, stopper);
    let err = res.unwrap_err();
    assert!(matches!(err, TwsError::Disconnected { .. }), "{err:?}");
    assert!(err.to_string().contains("disconnected"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    let _ = port;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out() {
    let mut script = Script::new();
    script.push("AAPL", "2024-01-02", Reply::Silent);
    script.push("AAPL", "2024-01-02", Reply::Silent);
    let fake = FakeTws::start(script, rules()).await;
    let timeout = Duration::from_millis(300);
    let client = TwsClient::connect(TwsConfig { timeout, max_retries: 1, ..cfg(&fake) }, Arc::new(Pacer::new(rules())))
        .await
        .unwrap();
    let t0 = Instant::now();
    let err = client.day_bars("AAPL", None, session_close_utc(day(2)), BarSize::Minute).await.unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(err, TwsError::Timeout { attempts: 2, .. }), "{err:?}");
    // 2 attempts x 300 ms + 75 ms backoff (+ slack)
    assert!(took >= 2 * timeout && took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(fake.requests().len(), 2);
    // the session is still usable afterwards
    assert_eq!(
        client.day_bars("AAPL", None, session_close_utc(day(3)), BarSize::Minute).await.unwrap().bars.len(),
        390
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectivity_notices_do_not_break_fetching() {
    let (fake, client) = setup(Script::new()).await;
    assert_eq!(
        client.day_bars("AAPL", None, session_close_utc(day(2)), BarSize::Minute).await.unwrap().bars.len(),
        390
    );
    fake.send_notice(1100, "Connectivity between IB and Trader Workstation has been lost.").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let client = Arc::new(client);
    let c2 = Arc::clone(&client);
    let pending =
        tokio::spawn(async move { c2.day_bars("AAPL", None, session_close_utc(day(3)), BarSize::Minute).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.requests().len(), 1, "new requests are held while IB is unreachable");
    fake.send_notice(1101, "Connectivity between IB and Trader Workstation has been restored - data lost.").await;
    let got = pending.await.unwrap().unwrap();
    assert_eq!(got.bars.len(), 390);
    fake.send_notice(2104, "Market data farm connection is OK:usfarm").await;
    assert_eq!(
        client.day_bars("AAPL", None, session_close_utc(day(4)), BarSize::Minute).await.unwrap().bars.len(),
        390
    );
    assert_eq!(fake.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_port_gives_connect_error_quickly() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = TwsConfig { host: "127.0.0.1".into(), port, ..TwsConfig::default() };
    let t0 = Instant::now();
    let err = match TwsClient::connect(cfg, Arc::new(Pacer::new(rules()))).await {
        Ok(_) => panic!("connected to a closed port"),
        Err(e) => e,
    };
    assert!(t0.elapsed() < Duration::from_secs(3));
    let msg = err.to_string();
    assert!(matches!(err, TwsError::Connect { .. }));
    assert!(
        msg.starts_with(&format!("cannot connect to TWS/IB Gateway at 127.0.0.1:{port}; is the API enabled?")),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_timestamp_is_returned() {
    let mut script = Script::new();
    script.head_timestamp("AAPL", 345_479_400);
    script.push("EMPTY", "head", Reply::no_data());
    let (_fake, client) = setup(script).await;
    let t = client.head_timestamp("AAPL", Some(265598)).await.unwrap().unwrap();
    assert_eq!(t.timestamp(), 345_479_400);
    assert_eq!(client.head_timestamp("EMPTY", None).await.unwrap(), None, "IB has no data: none, not an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_clients_share_one_fake() {
    let fake = FakeTws::start(Script::new(), rules()).await;
    let pacer = Arc::new(Pacer::new(rules()));
    let a = TwsClient::connect(TwsConfig { client_id: 1, ..cfg(&fake) }, Arc::clone(&pacer)).await.unwrap();
    let b = TwsClient::connect(TwsConfig { client_id: 2, ..cfg(&fake) }, Arc::clone(&pacer)).await.unwrap();
    let (ra, rb) = tokio::join!(
        a.day_bars("AAPL", None, session_close_utc(day(2)), BarSize::Minute),
        b.day_bars("MSFT", None, session_close_utc(day(2)), BarSize::Minute)
    );
    assert_eq!(ra.unwrap().bars.len(), 390);
    assert_eq!(rb.unwrap().bars.len(), 390);
    assert_eq!(fake.connections(), 2);
    let conns: std::collections::HashSet<usize> = fake.requests().iter().map(|r| r.connection).collect();
    assert_eq!(conns.len(), 2);
}

// ---- pacing, end to end: many symbols x days concurrently through one paced client.

const SYMBOLS: [&str; 8] = ["AAPL", "MSFT", "AMZN", "NVDA", "GOOG", "META", "TSLA", "SPY"];

fn weekdays(n: usize) -> Vec<NaiveDate> {
    let mut d = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        if !matches!(chrono::Datelike::weekday(&d), chrono::Weekday::Sat | chrono::Weekday::Sun) {
            out.push(d);
        }
        d = d.succ_opt().unwrap();
    }
    out
}

async fn run(fake: &FakeTws, pacer_rules: PacingRules, days: usize) -> Vec<Result<usize, String>> {
    let cfg = TwsConfig {
        host: "127.0.0.1".into(),
        port: fake.addr.port(),
        client_id: 9,
        timeout: Duration::from_secs(10),
        max_retries: 0,
        ..TwsConfig::default()
    };
    let client = Arc::new(TwsClient::connect(cfg, Arc::new(Pacer::new(pacer_rules))).await.unwrap());
    let mut set = tokio::task::JoinSet::new();
    for sym in SYMBOLS {
        for d in weekdays(days) {
            let client = Arc::clone(&client);
            set.spawn(async move {
                client
                    .day_bars(sym, None, session_close_utc(d), BarSize::Minute)
                    .await
                    .map(|b| b.bars.len())
                    .map_err(|e| e.to_string())
            });
        }
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_fetch_of_8_symbols_by_10_days_has_no_violations() {
    let rules = test_pacing();
    let fake = FakeTws::start(Script::new(), rules.clone()).await;
    let t0 = Instant::now();
    let results = run(&fake, rules.clone(), 10).await;
    let took = t0.elapsed();
    assert_eq!(results.len(), 80);
    assert!(
        results.iter().all(|r| r == &Ok(390)),
        "violations {:?}; first-burst receive spread {:?}",
        fake.violations(),
        fake.requests().iter().take(60).map(|r| r.received.duration_since(fake.requests()[0].received)).max()
    );
    assert_eq!(
        fake.violations(),
        Vec::<String>::new(),
        "first-burst receive spread: {:?}",
        fake.requests().iter().take(60).map(|r| r.received.duration_since(fake.requests()[0].received)).max()
    );
    assert_eq!(fake.requests().len(), 80);
    // 80 > 60 requests: the window rule must have held the last 20 for a full window
    assert!(took >= rules.window, "{took:?}");
    assert!(took < rules.window * 3, "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_unpaced_fetch_is_flagged_by_the_fake() {
    let rules = test_pacing();
    let fake = FakeTws::start(Script::new(), rules).await;
    let results = run(&fake, PacingRules::unlimited(), 10).await;
    let violations = fake.violations();
    assert!(!violations.is_empty());
    assert!(violations.iter().any(|v| v.contains("requests for")), "per-contract rule: {violations:?}");
    assert!(violations.iter().any(|v| v.contains("requests within")), "window rule: {violations:?}");
    // each violation was answered with 162 pacing; with max_retries 0 it surfaces as an error
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, violations.len(), "{results:?}");
}
