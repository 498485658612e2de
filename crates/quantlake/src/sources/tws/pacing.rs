//! Client-side enforcement of IB's historical-data pacing rules.
//!
//! IB counts a violation when a client sends an identical request within
//! 15 s, 6 or more requests for one contract within 2 s, or more than 60
//! requests in any 10-minute window; at most 50 requests may be open. The
//! [`Pacer`] delays each request until sending it breaks none of these.
//! All waiting uses `tokio::time`, so tests can run on a paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// IB's historical-data pacing limits.
#[derive(Clone, Debug)]
pub struct PacingRules {
    /// Minimum gap between two identical requests (15 s).
    pub identical_gap: Duration,
    /// Window of the per-contract rule (2 s).
    pub per_contract_window: Duration,
    /// Requests allowed for one contract within `per_contract_window` (5: IB flags 6 or more).
    pub per_contract_max: usize,
    /// The long window (10 minutes).
    pub window: Duration,
    /// Requests allowed within `window` (60).
    pub window_max: usize,
    /// Requests allowed to be open (unanswered) at once (50).
    pub max_open: usize,
}

impl Default for PacingRules {
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

impl PacingRules {
    /// The same rules with every duration multiplied by `factor` (for tests).
    pub fn scaled(&self, factor: f64) -> Self {
        Self {
            identical_gap: self.identical_gap.mul_f64(factor),
            per_contract_window: self.per_contract_window.mul_f64(factor),
            window: self.window.mul_f64(factor),
            ..self.clone()
        }
    }

    /// Rules that never delay anything (to bypass pacing in tests).
    pub fn unlimited() -> Self {
        Self {
            identical_gap: Duration::ZERO,
            per_contract_window: Duration::ZERO,
            per_contract_max: usize::MAX,
            window: Duration::ZERO,
            window_max: usize::MAX,
            max_open: Semaphore::MAX_PERMITS,
        }
    }
}

struct Entry {
    id: u64,
    contract: String,
    request: String,
    /// Grant time, moved forward to the release time when the permit drops.
    at: Instant,
    open: bool,
}

#[derive(Default)]
struct PacerState {
    entries: Vec<Entry>,
    next_id: u64,
    /// No grants before this instant (set by `penalize`).
    paused_until: Option<Instant>,
}

impl PacerState {
    /// Drop closed entries that can no longer constrain anything at `now`.
    fn prune(&mut self, rules: &PacingRules, now: Instant) {
        let horizon = rules.window.max(rules.per_contract_window).max(rules.identical_gap);
        self.entries.retain(|e| e.open || e.at + horizon > now);
    }

    /// Earliest instant at which a request for (`contract`, `request`) may be sent.
    fn earliest(&self, rules: &PacingRules, contract: &str, request: &str, now: Instant) -> Instant {
        let mut at = now;
        if let Some(p) = self.paused_until {
            at = at.max(p);
        }
        if let Some(t) = self.entries.iter().filter(|e| e.request == request).map(|e| e.at).max() {
            at = at.max(t + rules.identical_gap);
        }
        let nth_back = |mut times: Vec<Instant>, max: usize, window: Duration| -> Option<Instant> {
            if times.len() < max || max == 0 {
                return None;
            }
            times.sort();
            // The entry `max` sends back must have left the window.
            Some(times[times.len() - max] + window)
        };
        let mine: Vec<Instant> = self.entries.iter().filter(|e| e.contract == contract).map(|e| e.at).collect();
        if let Some(t) = nth_back(mine, rules.per_contract_max, rules.per_contract_window) {
            at = at.max(t);
        }
        if let Some(t) = nth_back(self.entries.iter().map(|e| e.at).collect(), rules.window_max, rules.window) {
            at = at.max(t);
        }
        at
    }

    fn record(&mut self, contract: &str, request: &str, now: Instant) -> u64 {
        self.next_id += 1;
        self.entries.push(Entry {
            id: self.next_id,
            contract: contract.to_string(),
            request: request.to_string(),
            at: now,
            open: true,
        });
        self.next_id
    }
}

/// Shared pacing gate; cheap to share behind an `Arc`.
///
/// A request's send time is recorded when its permit is granted and moved to
/// the moment the permit is dropped (the answer arrived). IB measures at its
/// receive time, which lies in between; counting the later instant keeps the
/// client on the safe side of every window however long the send was delayed
/// (a burst of 60 requests can take 100+ ms to leave one socket).
pub struct Pacer {
    rules: PacingRules,
    open: Arc<Semaphore>,
    state: Arc<Mutex<PacerState>>,
}

/// Proof that a request may be sent; holds one of the `max_open` slots until dropped.
#[derive(Debug)]
pub struct PacingPermit {
    /// `None` only if the semaphore were closed, which the pacer never does.
    _slot: Option<OwnedSemaphorePermit>,
    id: u64,
    state: std::sync::Weak<Mutex<PacerState>>,
    /// When the permit was granted.
    pub granted_at: Instant,
}

impl std::fmt::Debug for PacerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacerState").field("entries", &self.entries.len()).finish()
    }
}

impl Drop for PacingPermit {
    fn drop(&mut self) {
        if let Some(state) = self.state.upgrade() {
            let now = Instant::now();
            let mut state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(e) = state.entries.iter_mut().find(|e| e.id == self.id) {
                e.at = e.at.max(now);
                e.open = false;
            }
        }
    }
}

impl Pacer {
    pub fn new(rules: PacingRules) -> Self {
        let slots = rules.max_open.clamp(1, Semaphore::MAX_PERMITS);
        Self { open: Arc::new(Semaphore::new(slots)), rules, state: Arc::new(Mutex::new(PacerState::default())) }
    }

    pub fn rules(&self) -> &PacingRules {
        &self.rules
    }

    /// Wait until a request for `contract_key` with identity `request_key` can be
    /// sent without breaking any rule; the send time is recorded on return.
    pub async fn acquire(&self, contract_key: &str, request_key: &str) -> PacingPermit {
        let slot = Arc::clone(&self.open).acquire_owned().await.ok();
        loop {
            let wake_at = {
                let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                state.prune(&self.rules, now);
                let at = state.earliest(&self.rules, contract_key, request_key, now);
                if at <= now {
                    let id = state.record(contract_key, request_key, now);
                    tracing::trace!(contract_key, request_key, "pacing permit granted");
                    return PacingPermit { _slot: slot, id, state: Arc::downgrade(&self.state), granted_at: now };
                }
                at
            };
            tracing::debug!(
                contract_key,
                request_key,
                wait_ms = (wake_at - Instant::now()).as_millis() as u64,
                "pacing wait"
            );
            tokio::time::sleep_until(wake_at).await;
        }
    }

    /// Pause all new grants for `d` from now (after a pacing violation).
    pub fn penalize(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.paused_until = Some(state.paused_until.map_or(until, |p| p.max(until)));
        tracing::warn!(pause_ms = d.as_millis() as u64, "historical-data pacing penalty");
    }

    /// Number of open-request slots currently free.
    pub fn available_slots(&self) -> usize {
        self.open.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[tokio::test(start_paused = true)]
    async fn window_rule_61st_waits_for_first_to_leave() {
        let pacer = Pacer::new(PacingRules::default());
        let t0 = Instant::now();
        let mut grants = Vec::new();
        for i in 0..61 {
            // distinct contracts: only the window rule applies
            let p = pacer.acquire(&format!("C{i}"), &format!("R{i}")).await;
            grants.push(p.granted_at - t0);
        }
        assert!(grants[..60].iter().all(|g| *g == Duration::ZERO), "first 60 immediate");
        assert_eq!(grants[60], secs(600.0));
    }

    #[tokio::test(start_paused = true)]
    async fn window_rule_is_sliding() {
        let pacer = Pacer::new(PacingRules::default());
        let t0 = Instant::now();
        for i in 0..30 {
            drop(pacer.acquire(&format!("A{i}"), &format!("A{i}")).await);
        }
        tokio::time::sleep(secs(100.0)).await;
        for i in 0..30 {
            drop(pacer.acquire(&format!("B{i}"), &format!("B{i}")).await);
        }
        // 61st waits for the first batch (t=0) to leave: t=600; 91st for the second batch: t=700.
        let p = pacer.acquire("X", "X").await;
        assert_eq!(p.granted_at - t0, secs(600.0));
        for i in 0..29 {
            drop(pacer.acquire(&format!("C{i}"), &format!("C{i}")).await);
        }
        let p = pacer.acquire("Y", "Y").await;
        assert_eq!(p.granted_at - t0, secs(700.0));
    }

    #[tokio::test(start_paused = true)]
    async fn six_to_one_contract_within_two_seconds_impossible() {
        let pacer = Pacer::new(PacingRules::default());
        let t0 = Instant::now();
        let mut grants = Vec::new();
        for i in 0..12 {
            let p = pacer.acquire("AAPL@SMART", &format!("AAPL {i}")).await;
            grants.push(p.granted_at - t0);
        }
        for w in grants.windows(6) {
            assert!(w[5] - w[0] >= secs(2.0), "6 grants within 2 s: {w:?}");
        }
        assert_eq!(grants[4], Duration::ZERO);
        assert_eq!(grants[5], secs(2.0));
        assert_eq!(grants[10], secs(4.0));
        // another contract is not held back
        let p = pacer.acquire("MSFT@SMART", "MSFT 0").await;
        assert_eq!(p.granted_at - t0, secs(4.0));
    }

    #[tokio::test(start_paused = true)]
    async fn identical_request_waits_fifteen_seconds() {
        let pacer = Pacer::new(PacingRules::default());
        let t0 = Instant::now();
        drop(pacer.acquire("AAPL@SMART", "AAPL 20240102 1 min").await);
        tokio::time::sleep(secs(3.0)).await;
        let p = pacer.acquire("AAPL@SMART", "AAPL 20240102 1 min").await;
        assert_eq!(p.granted_at - t0, secs(15.0));
        // a different request key is not held back by it
        let p = pacer.acquire("AAPL@SMART", "AAPL 20240103 1 min").await;
        assert_eq!(p.granted_at - t0, secs(15.0));
    }

    #[tokio::test(start_paused = true)]
    async fn max_open_holds_until_a_permit_drops() {
        let rules = PacingRules { max_open: 2, ..PacingRules::default() };
        let pacer = Arc::new(Pacer::new(rules));
        let a = pacer.acquire("A", "A").await;
        let _b = pacer.acquire("B", "B").await;
        let t0 = Instant::now();
        let p2 = Arc::clone(&pacer);
        let waiter = tokio::spawn(async move { p2.acquire("C", "C").await.granted_at });
        tokio::time::sleep(secs(30.0)).await;
        assert!(!waiter.is_finished(), "third request must wait for a free slot");
        drop(a);
        let granted = waiter.await.unwrap();
        assert_eq!(granted - t0, secs(30.0));
    }

    #[tokio::test(start_paused = true)]
    async fn penalize_pauses_all_grants() {
        let pacer = Pacer::new(PacingRules::default());
        let t0 = Instant::now();
        pacer.penalize(secs(20.0));
        pacer.penalize(secs(5.0)); // a shorter penalty does not shorten the pause
        let p = pacer.acquire("A", "A").await;
        assert_eq!(p.granted_at - t0, secs(20.0));
        let p = pacer.acquire("B", "B").await;
        assert_eq!(p.granted_at - t0, secs(20.0));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_never_break_rules() {
        let pacer = Arc::new(Pacer::new(PacingRules::default().scaled(0.01)));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for s in 0..4 {
            for d in 0..40 {
                let pacer = Arc::clone(&pacer);
                tasks.push(tokio::spawn(async move {
                    let c = format!("S{s}");
                    let p = pacer.acquire(&c, &format!("{c} {d}")).await;
                    (c, p.granted_at - t0)
                }));
            }
        }
        let mut grants: Vec<(String, Duration)> = Vec::new();
        for t in tasks {
            grants.push(t.await.unwrap());
        }
        let rules = pacer.rules().clone();
        let mut all: Vec<Duration> = grants.iter().map(|g| g.1).collect();
        all.sort();
        for w in all.windows(rules.window_max + 1) {
            assert!(w[rules.window_max] - w[0] >= rules.window);
        }
        for s in 0..4 {
            let mut mine: Vec<Duration> = grants.iter().filter(|g| g.0 == format!("S{s}")).map(|g| g.1).collect();
            mine.sort();
            for w in mine.windows(rules.per_contract_max + 1) {
                assert!(w[rules.per_contract_max] - w[0] >= rules.per_contract_window);
            }
        }
        // 160 requests at 60 per 6 s window: the third batch cannot start before 12 s
        let last = *all.last().unwrap();
        assert!(last >= secs(12.0) && last < secs(12.5), "{last:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn send_time_moves_to_release_of_the_permit() {
        let pacer = Pacer::new(PacingRules::default());
        let t0 = Instant::now();
        let p = pacer.acquire("A", "A 1").await;
        tokio::time::sleep(secs(5.0)).await; // answer took 5 s
        drop(p);
        let p = pacer.acquire("A", "A 1").await;
        assert_eq!(p.granted_at - t0, secs(20.0), "identical gap counted from the release");
    }

    #[test]
    fn scaled_multiplies_durations_only() {
        let r = PacingRules::default().scaled(0.005);
        assert_eq!(r.window, secs(3.0));
        assert_eq!(r.identical_gap, secs(0.075));
        assert_eq!(r.per_contract_window, secs(0.01));
        assert_eq!(r.window_max, 60);
        assert_eq!(r.per_contract_max, 5);
        assert_eq!(r.max_open, 50);
    }
}
