//! NYSE (US equities) trading calendar.
//!
//! Regular session: 09:30-16:00 America/New_York; 13:00 close on early-close
//! days. Times are converted to UTC through `chrono-tz`, so daylight saving is
//! handled per date.
//!
//! Coverage: the rules are verified against published NYSE schedules for
//! 2000-2030 ([`NyseCalendar::FIRST_YEAR`]..=[`NyseCalendar::LAST_YEAR`]).
//! Other years never panic: the same recurring rules are simply extended, but
//! the list of one-off closures (September 11, national days of mourning,
//! Hurricane Sandy, ...) is only known for 2000-2030, and holiday rules that
//! changed before 2000 are not reproduced. Dates are New York calendar dates.
//!
//! Not modelled: delayed openings (e.g. the noon open on 2002-09-11) and
//! unscheduled intraday halts; every session here is 390 or 210 minutes.

mod holidays;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// The exchange's time zone.
pub const NEW_YORK: Tz = chrono_tz::America::New_York;

/// Local (New York) session times as (hour, minute).
const OPEN_TIME: (u32, u32) = (9, 30);
const CLOSE_TIME: (u32, u32) = (16, 0);
const EARLY_CLOSE_TIME: (u32, u32) = (13, 0);

/// One trading day's regular session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Session {
    /// New York calendar date of the session.
    pub date: NaiveDate,
    /// Regular-session open (09:30 New York) in UTC.
    pub open: DateTime<Utc>,
    /// Regular-session close (16:00, or 13:00 on early-close days) in UTC.
    pub close: DateTime<Utc>,
    /// True when the session closes at 13:00 New York time.
    pub early_close: bool,
}

impl Session {
    /// Number of one-minute bars in the regular session: 390, or 210 on
    /// early-close days.
    pub fn minutes(&self) -> u32 {
        // open < close by construction, and both are on the same day.
        u32::try_from((self.close - self.open).num_minutes()).unwrap_or(0)
    }

    /// Open in New York local time.
    pub fn open_local(&self) -> DateTime<Tz> {
        self.open.with_timezone(&NEW_YORK)
    }

    /// Close in New York local time.
    pub fn close_local(&self) -> DateTime<Tz> {
        self.close.with_timezone(&NEW_YORK)
    }

    /// True if `ts` falls in regular hours: `open <= ts < close`.
    pub fn contains(&self, ts: DateTime<Utc>) -> bool {
        self.open <= ts && ts < self.close
    }
}

/// The NYSE calendar. Stateless; every query computes from the rules.
///
/// Dates outside chrono's representable range saturate at
/// `NaiveDate::MIN`/`NaiveDate::MAX` instead of panicking.
#[derive(Debug, Clone, Copy, Default)]
pub struct NyseCalendar;

impl NyseCalendar {
    /// First year whose closures and early closes are verified.
    pub const FIRST_YEAR: i32 = 2000;
    /// Last year whose closures and early closes are verified.
    pub const LAST_YEAR: i32 = 2030;

    /// True if the exchange holds a regular session on `d`.
    pub fn is_session(&self, d: NaiveDate) -> bool {
        holidays::is_session(d)
    }

    /// The session on `d`, or `None` on weekends and holidays.
    pub fn session(&self, d: NaiveDate) -> Option<Session> {
        if !self.is_session(d) {
            return None;
        }
        let early_close = holidays::is_early_close(d);
        let close_time = if early_close { EARLY_CLOSE_TIME } else { CLOSE_TIME };
        Some(Session {
            date: d,
            open: new_york_to_utc(d, OPEN_TIME)?,
            close: new_york_to_utc(d, close_time)?,
            early_close,
        })
    }

    /// All sessions from `start` to `end`, both inclusive (empty if
    /// `start > end`).
    pub fn sessions(&self, start: NaiveDate, end: NaiveDate) -> Vec<Session> {
        start.iter_days().take_while(|&d| d <= end).filter_map(|d| self.session(d)).collect()
    }

    /// Name of the weekday closure on `d` (e.g. "Good Friday",
    /// "Hurricane Sandy"); `None` for sessions and weekends. An observed
    /// holiday carries the holiday's own name (2021-12-24 is "Christmas Day").
    pub fn holiday_name(&self, d: NaiveDate) -> Option<&'static str> {
        holidays::closure_name(d)
    }

    /// First session strictly after `d`.
    pub fn next_session(&self, d: NaiveDate) -> NaiveDate {
        self.add_sessions(d, 1)
    }

    /// Last session strictly before `d`.
    pub fn previous_session(&self, d: NaiveDate) -> NaiveDate {
        self.add_sessions(d, -1)
    }

    /// Business-day arithmetic. For `n > 0`, the `n`-th session strictly after
    /// `d`; for `n < 0`, the `|n|`-th session strictly before `d`; for `n == 0`,
    /// `d` itself. `d` need not be a session (Saturday + 1 is Monday,
    /// Saturday - 1 is Friday, holidays permitting).
    ///
    /// `sessions_between(d, add_sessions(d, n)) == n` holds for every `n >= 0`,
    /// and for `n < 0` whenever `d` is a session.
    pub fn add_sessions(&self, d: NaiveDate, n: i64) -> NaiveDate {
        match n {
            0 => d,
            n if n > 0 => forward(d, n.unsigned_abs()),
            n => backward(d, n.unsigned_abs()),
        }
    }

    /// Number of sessions in `(a, b]`, or minus the number in `(b, a]` when
    /// `b < a`: the lag of `b` after `a` in business days. A session is counted
    /// on the day it happens, so Friday -> Monday is 1 and Friday -> Saturday
    /// is 0.
    pub fn sessions_between(&self, a: NaiveDate, b: NaiveDate) -> i64 {
        if a <= b {
            count_sessions(a, b) - i64::from(self.is_session(a))
        } else {
            -(count_sessions(b, a) - i64::from(self.is_session(b)))
        }
    }

    /// The session whose regular hours (`open <= ts < close`) contain `ts`.
    pub fn session_of(&self, ts: DateTime<Utc>) -> Option<Session> {
        self.session(self.trading_date(ts)).filter(|s| s.contains(ts))
    }

    /// New York calendar date of `ts` (01:00 UTC is still the previous day in
    /// New York).
    pub fn trading_date(&self, ts: DateTime<Utc>) -> NaiveDate {
        ts.with_timezone(&NEW_YORK).date_naive()
    }

    /// 00:00 New York time on `d`, in UTC: the stamp of a daily bar, and where `d`'s New York day
    /// starts. (DST switches at 02:00, so midnight always exists; `None` only out of range.)
    pub fn day_start(&self, d: NaiveDate) -> Option<DateTime<Utc>> {
        new_york_to_utc(d, (0, 0))
    }

    /// Latest session whose close is at or before `now`: today's session once
    /// it has closed, otherwise the previous one.
    pub fn last_completed_session(&self, now: DateTime<Utc>) -> NaiveDate {
        let today = self.trading_date(now);
        match self.session(today) {
            Some(s) if s.close <= now => today,
            _ => self.previous_session(today),
        }
    }
}

/// New York local `time` on `d`, in UTC. Session times are far from the 02:00
/// DST switch, so the local time is never skipped or repeated; `earliest`
/// keeps this total anyway.
fn new_york_to_utc(d: NaiveDate, (h, m): (u32, u32)) -> Option<DateTime<Utc>> {
    let local = d.and_time(NaiveTime::from_hms_opt(h, m, 0)?);
    NEW_YORK.from_local_datetime(&local).earliest().map(|t| t.with_timezone(&Utc))
}

/// Number of Monday-Friday dates in `[lo, hi]` (0 if `lo > hi`).
fn weekdays_in(lo: NaiveDate, hi: NaiveDate) -> i64 {
    if lo > hi {
        return 0;
    }
    let days = (hi - lo).num_days() + 1;
    let full_weeks = days / 7;
    let start = i64::from(lo.weekday().num_days_from_monday());
    // The leftover days (< 7) start on lo's weekday.
    let rest = (0..days % 7).filter(|i| (start + i) % 7 < 5).count() as i64;
    full_weeks * 5 + rest
}

/// First and last day of `year`, clamped to chrono's range.
fn year_bounds(year: i32) -> (NaiveDate, NaiveDate) {
    (
        NaiveDate::from_ymd_opt(year, 1, 1).unwrap_or(NaiveDate::MIN),
        NaiveDate::from_ymd_opt(year, 12, 31).unwrap_or(NaiveDate::MAX),
    )
}

/// Number of sessions in `[lo, hi]`, computed a calendar year at a time so
/// that spans of millennia stay cheap.
fn count_sessions(lo: NaiveDate, hi: NaiveDate) -> i64 {
    if lo > hi {
        return 0;
    }
    (lo.year()..=hi.year())
        .map(|year| {
            let (first, last) = year_bounds(year);
            let (a, b) = (first.max(lo), last.min(hi));
            weekdays_in(a, b) - holidays::closures_within(a, b)
        })
        .sum()
}

/// The `n`-th (n >= 1) session strictly after `d`; saturates at
/// `NaiveDate::MAX`.
fn forward(d: NaiveDate, n: u64) -> NaiveDate {
    let mut remaining = n;
    let mut cur = d;
    loop {
        // Sessions in (cur, end of the year containing the day after cur].
        let Some(next) = cur.succ_opt() else {
            return NaiveDate::MAX;
        };
        let (_, year_end) = year_bounds(next.year());
        let rest_of_year = count_sessions(next, year_end).unsigned_abs();
        if rest_of_year < remaining {
            // Target lies beyond this year: skip it whole.
            remaining -= rest_of_year;
            if year_end == NaiveDate::MAX {
                return NaiveDate::MAX;
            }
            cur = year_end;
            continue;
        }
        // Target is within (cur, year_end]: walk at most a year of days.
        for day in cur.iter_days().skip(1) {
            if holidays::is_session(day) {
                remaining -= 1;
                if remaining == 0 {
                    return day;
                }
            }
        }
        return NaiveDate::MAX;
    }
}

/// The `n`-th (n >= 1) session strictly before `d`; saturates at
/// `NaiveDate::MIN`.
fn backward(d: NaiveDate, n: u64) -> NaiveDate {
    let mut remaining = n;
    let mut cur = d;
    loop {
        // Sessions in [start of the year containing the day before cur, cur).
        let Some(prev) = cur.pred_opt() else {
            return NaiveDate::MIN;
        };
        let (year_start, _) = year_bounds(prev.year());
        let rest_of_year = count_sessions(year_start, prev).unsigned_abs();
        if rest_of_year < remaining {
            remaining -= rest_of_year;
            if year_start == NaiveDate::MIN {
                return NaiveDate::MIN;
            }
            cur = year_start;
            continue;
        }
        for day in cur.iter_days().rev().skip(1) {
            if holidays::is_session(day) {
                remaining -= 1;
                if remaining == 0 {
                    return day;
                }
            }
        }
        return NaiveDate::MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAL: NyseCalendar = NyseCalendar;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().expect("valid test time")
    }

    fn year_count(y: i32) -> usize {
        CAL.sessions(date(y, 1, 1), date(y, 12, 31)).len()
    }

    #[test]
    fn published_yearly_session_counts() {
        for (year, count) in [
            (2001, 248),
            (2012, 250),
            (2018, 251),
            (2019, 252),
            (2020, 253),
            (2021, 252),
            (2022, 251),
            (2023, 250),
            (2024, 252),
            (2025, 250),
        ] {
            assert_eq!(year_count(year), count, "sessions in {year}");
        }
    }

    #[test]
    fn year_counting_agrees_with_day_by_day() {
        for year in 1995..=2035 {
            let (a, b) = (date(year, 1, 1), date(year, 12, 31));
            assert_eq!(count_sessions(a, b), year_count(year) as i64, "{year}");
        }
        // Partial ranges spanning year ends.
        let (a, b) = (date(2012, 10, 15), date(2014, 2, 3));
        assert_eq!(count_sessions(a, b), CAL.sessions(a, b).len() as i64);
    }

    #[test]
    fn one_off_closures() {
        for (y, m, d, name) in [
            (2001, 9, 11, "September 11 attacks"),
            (2001, 9, 12, "September 11 attacks"),
            (2001, 9, 13, "September 11 attacks"),
            (2001, 9, 14, "September 11 attacks"),
            (2004, 6, 11, "Ronald Reagan national day of mourning"),
            (2007, 1, 2, "Gerald Ford national day of mourning"),
            (2012, 10, 29, "Hurricane Sandy"),
            (2012, 10, 30, "Hurricane Sandy"),
            (2018, 12, 5, "George H.W. Bush national day of mourning"),
            (2025, 1, 9, "Jimmy Carter national day of mourning"),
        ] {
            let day = date(y, m, d);
            assert!(!CAL.is_session(day), "{day}");
            assert_eq!(CAL.session(day), None, "{day}");
            assert_eq!(CAL.holiday_name(day), Some(name), "{day}");
        }
        // Neighbours were trading days.
        assert!(CAL.is_session(date(2001, 9, 10)));
        assert!(CAL.is_session(date(2001, 9, 17)));
        assert!(CAL.is_session(date(2012, 10, 31)));
    }

    #[test]
    fn recurring_holidays_and_names() {
        let cases = [
            (date(2024, 3, 29), "Good Friday"),
            (date(2000, 4, 21), "Good Friday"),
            (date(2023, 1, 2), "New Year's Day"),
            (date(2024, 1, 15), "Martin Luther King Jr. Day"),
            (date(2024, 2, 19), "Washington's Birthday"),
            (date(2024, 5, 27), "Memorial Day"),
            (date(2015, 7, 3), "Independence Day"),
            (date(2020, 7, 3), "Independence Day"),
            (date(2021, 7, 5), "Independence Day"),
            (date(2024, 9, 2), "Labor Day"),
            (date(2024, 11, 28), "Thanksgiving Day"),
            (date(2021, 12, 24), "Christmas Day"),
            (date(2022, 12, 26), "Christmas Day"),
        ];
        for (d, name) in cases {
            assert!(!CAL.is_session(d), "{d}");
            assert_eq!(CAL.holiday_name(d), Some(name), "{d}");
        }
        // Saturday New Year's Day is not observed on the Friday before.
        for d in [date(2004, 12, 31), date(2010, 12, 31), date(2021, 12, 31)] {
            assert!(CAL.is_session(d), "{d}");
        }
        // Weekends and sessions have no holiday name.
        assert_eq!(CAL.holiday_name(date(2024, 7, 6)), None);
        assert_eq!(CAL.holiday_name(date(2022, 1, 1)), None);
        assert_eq!(CAL.holiday_name(date(2024, 7, 5)), None);
    }

    #[test]
    fn juneteenth_starts_in_2022() {
        assert!(CAL.is_session(date(2021, 6, 18)));
        assert!(!CAL.is_session(date(2021, 6, 19))); // Saturday
        assert!(!CAL.is_session(date(2022, 6, 20)));
        assert_eq!(CAL.holiday_name(date(2022, 6, 20)), Some("Juneteenth"));
        assert!(CAL.is_session(date(2022, 6, 17)));
        assert!(!CAL.is_session(date(2023, 6, 19)));
        assert!(!CAL.is_session(date(2024, 6, 19)));
        assert!(!CAL.is_session(date(2027, 6, 18))); // Saturday -> Friday
    }

    #[test]
    fn early_closes() {
        let early = [
            (2000, 7, 3),
            (2000, 11, 24),
            (2001, 7, 3),
            (2001, 11, 23),
            (2001, 12, 24),
            (2002, 7, 5),
            (2002, 11, 29),
            (2002, 12, 24),
            (2003, 7, 3),
            (2003, 11, 28),
            (2003, 12, 24),
            (2003, 12, 26),
            (2006, 7, 3),
            (2007, 7, 3),
            (2008, 7, 3),
            (2012, 7, 3),
            (2013, 7, 3),
            (2018, 12, 24),
            (2019, 7, 3),
            (2019, 11, 29),
            (2019, 12, 24),
            (2020, 11, 27),
            (2020, 12, 24),
            (2021, 11, 26),
            (2022, 11, 25),
            (2023, 7, 3),
            (2023, 11, 24),
            (2024, 7, 3),
            (2024, 11, 29),
            (2024, 12, 24),
            (2025, 7, 3),
            (2025, 11, 28),
            (2025, 12, 24),
        ];
        for (y, m, d) in early {
            let s = CAL.session(date(y, m, d)).expect("early close is a session");
            assert!(s.early_close, "{y}-{m}-{d}");
            assert_eq!(s.minutes(), 210, "{y}-{m}-{d}");
            // 13:00 New York is 17:00 UTC in summer (EDT), 18:00 in winter (EST).
            let utc_hour = if m == 7 { 17 } else { 18 };
            assert_eq!(s.close, utc(y, m, d, utc_hour, 0), "{y}-{m}-{d}");
            assert_eq!(s.close_local().time(), NaiveTime::from_hms_opt(13, 0, 0).unwrap());
        }
        // Full days that a naive rule might shorten.
        for d in [
            date(2002, 7, 3), // Wednesday before 2013: half day moved to Jul 5
            date(2013, 7, 5), // Friday after Jul 4 from 2013: full day
            date(2009, 7, 2), // Thursday before the Friday Jul 3 holiday
            date(2020, 7, 2),
            date(2022, 12, 23), // Friday before Sunday Christmas
            date(2021, 12, 23), // Thursday before the Friday Dec 24 holiday
            date(2025, 12, 26), // Friday after Christmas
        ] {
            let s = CAL.session(d).expect("session");
            assert!(!s.early_close, "{d}");
            assert_eq!(s.minutes(), 390, "{d}");
        }
        // Yearly early-close sets for recent years.
        let early_in = |y: i32| -> Vec<NaiveDate> {
            CAL.sessions(date(y, 1, 1), date(y, 12, 31)).into_iter().filter(|s| s.early_close).map(|s| s.date).collect()
        };
        assert_eq!(early_in(2021), vec![date(2021, 11, 26)]);
        assert_eq!(early_in(2022), vec![date(2022, 11, 25)]);
        assert_eq!(early_in(2020), vec![date(2020, 11, 27), date(2020, 12, 24)]);
        assert_eq!(early_in(2019), vec![date(2019, 7, 3), date(2019, 11, 29), date(2019, 12, 24)]);
        assert_eq!(early_in(2004), vec![date(2004, 11, 26)]);
    }

    #[test]
    fn session_times_follow_dst() {
        let s = CAL.session(date(2024, 3, 8)).expect("session");
        assert_eq!(s.open, utc(2024, 3, 8, 14, 30));
        assert_eq!(s.close, utc(2024, 3, 8, 21, 0));
        let s = CAL.session(date(2024, 3, 11)).expect("session");
        assert_eq!(s.open, utc(2024, 3, 11, 13, 30));
        assert_eq!(s.close, utc(2024, 3, 11, 20, 0));
        let s = CAL.session(date(2024, 11, 1)).expect("session");
        assert_eq!(s.open, utc(2024, 11, 1, 13, 30));
        let s = CAL.session(date(2024, 11, 4)).expect("session");
        assert_eq!(s.open, utc(2024, 11, 4, 14, 30));
        assert_eq!(s.minutes(), 390);
        assert_eq!(s.open_local().time(), NaiveTime::from_hms_opt(9, 30, 0).unwrap());
        assert_eq!(s.close_local().time(), NaiveTime::from_hms_opt(16, 0, 0).unwrap());
    }

    #[test]
    fn sessions_range() {
        // Thanksgiving week 2024: Mon-Wed, (Thu closed), Fri early.
        let s = CAL.sessions(date(2024, 11, 24), date(2024, 11, 30));
        let dates: Vec<_> = s.iter().map(|s| s.date).collect();
        assert_eq!(dates, vec![date(2024, 11, 25), date(2024, 11, 26), date(2024, 11, 27), date(2024, 11, 29)]);
        assert!(CAL.sessions(date(2024, 12, 31), date(2024, 1, 1)).is_empty());
        assert_eq!(CAL.sessions(date(2024, 1, 2), date(2024, 1, 2)).len(), 1);
    }

    #[test]
    fn next_and_previous() {
        // Across a weekend.
        assert_eq!(CAL.next_session(date(2024, 3, 8)), date(2024, 3, 11));
        assert_eq!(CAL.previous_session(date(2024, 3, 11)), date(2024, 3, 8));
        // From a weekend day.
        assert_eq!(CAL.next_session(date(2024, 3, 9)), date(2024, 3, 11));
        assert_eq!(CAL.previous_session(date(2024, 3, 10)), date(2024, 3, 8));
        // Across Good Friday + weekend.
        assert_eq!(CAL.next_session(date(2024, 3, 28)), date(2024, 4, 1));
        assert_eq!(CAL.previous_session(date(2024, 4, 1)), date(2024, 3, 28));
        // Across a year end and the Jan 2 2023 observed New Year.
        assert_eq!(CAL.next_session(date(2022, 12, 30)), date(2023, 1, 3));
        // September 11.
        assert_eq!(CAL.next_session(date(2001, 9, 10)), date(2001, 9, 17));
        assert_eq!(CAL.previous_session(date(2001, 9, 17)), date(2001, 9, 10));
    }

    #[test]
    fn add_sessions_and_lag() {
        let fri = date(2024, 3, 8);
        assert_eq!(CAL.add_sessions(fri, 0), fri);
        assert_eq!(CAL.add_sessions(date(2024, 3, 9), 0), date(2024, 3, 9));
        assert_eq!(CAL.add_sessions(fri, 1), date(2024, 3, 11));
        assert_eq!(CAL.add_sessions(fri, 5), date(2024, 3, 15));
        assert_eq!(CAL.add_sessions(fri, -5), date(2024, 3, 1));
        // Saturday: +1 is Monday, -1 is Friday.
        assert_eq!(CAL.add_sessions(date(2024, 3, 9), 1), date(2024, 3, 11));
        assert_eq!(CAL.add_sessions(date(2024, 3, 9), -1), fri);
        // Over Christmas + New Year 2024/25.
        assert_eq!(CAL.add_sessions(date(2024, 12, 24), 1), date(2024, 12, 26));
        assert_eq!(CAL.add_sessions(date(2024, 12, 31), 1), date(2025, 1, 2));
        assert_eq!(CAL.add_sessions(date(2025, 1, 2), -2), date(2024, 12, 30));
        // A whole year forward and back, crossing year skipping.
        assert_eq!(CAL.add_sessions(date(2023, 12, 31), 252), date(2024, 12, 31));
        assert_eq!(CAL.add_sessions(date(2025, 1, 1), -252), date(2024, 1, 2));
        assert_eq!(CAL.add_sessions(date(2024, 12, 31), -252), date(2023, 12, 29));

        // sessions_between: (a, b].
        assert_eq!(CAL.sessions_between(fri, fri), 0);
        assert_eq!(CAL.sessions_between(fri, date(2024, 3, 9)), 0);
        assert_eq!(CAL.sessions_between(fri, date(2024, 3, 11)), 1);
        assert_eq!(CAL.sessions_between(date(2024, 3, 11), fri), -1);
        assert_eq!(CAL.sessions_between(date(2024, 3, 28), date(2024, 4, 1)), 1);
        assert_eq!(CAL.sessions_between(date(2023, 12, 31), date(2024, 12, 31)), 252);
        assert_eq!(CAL.sessions_between(date(2024, 12, 31), date(2023, 12, 31)), -252);

        // add_sessions and sessions_between are inverse over a range of starts.
        let mut d = date(2012, 10, 20);
        while d <= date(2013, 1, 10) {
            for n in [-300, -40, -3, -1, 0, 1, 2, 7, 40, 300] {
                let r = CAL.add_sessions(d, n);
                if n >= 0 || CAL.is_session(d) {
                    assert_eq!(CAL.sessions_between(d, r), n, "{d} {n}");
                }
                assert_eq!(CAL.sessions_between(r, d), -CAL.sessions_between(d, r));
                if n != 0 {
                    assert!(CAL.is_session(r), "{d} {n} -> {r}");
                }
            }
            d = d.succ_opt().expect("in range");
        }
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        assert_eq!(CAL.add_sessions(date(2024, 1, 1), i64::MAX), NaiveDate::MAX);
        assert_eq!(CAL.add_sessions(date(2024, 1, 1), i64::MIN), NaiveDate::MIN);
        assert_eq!(CAL.next_session(NaiveDate::MAX), NaiveDate::MAX);
        assert_eq!(CAL.previous_session(NaiveDate::MIN), NaiveDate::MIN);
        let _ = CAL.session(NaiveDate::MAX);
        let _ = CAL.session(NaiveDate::MIN);
        assert!(CAL.sessions_between(NaiveDate::MIN, NaiveDate::MAX) > 0);
        // Out-of-range years extend the rules.
        assert!(!CAL.is_session(date(2035, 12, 25)));
        assert!(!CAL.is_session(date(1999, 4, 2))); // Good Friday 1999
        assert_eq!(CAL.next_session(date(2031, 12, 31)), date(2032, 1, 2));
    }

    #[test]
    fn timestamps_around_midnight_utc() {
        // 2024-03-12 00:30 UTC is 20:30 EDT on Monday 2024-03-11.
        let late = utc(2024, 3, 12, 0, 30);
        assert_eq!(CAL.trading_date(late), date(2024, 3, 11));
        assert_eq!(CAL.session_of(late), None);
        assert_eq!(CAL.last_completed_session(late), date(2024, 3, 11));
        // Winter: 04:59 UTC is still the previous New York day, 05:00 is not.
        assert_eq!(CAL.trading_date(utc(2024, 1, 10, 4, 59)), date(2024, 1, 9));
        assert_eq!(CAL.trading_date(utc(2024, 1, 10, 5, 0)), date(2024, 1, 10));

        // Regular-hours boundaries: open inclusive, close exclusive.
        let open = utc(2024, 3, 11, 13, 30);
        let s = CAL.session_of(open).expect("in session");
        assert_eq!(s.date, date(2024, 3, 11));
        assert!(s.contains(utc(2024, 3, 11, 19, 59)));
        assert_eq!(CAL.session_of(utc(2024, 3, 11, 13, 29)), None);
        assert_eq!(CAL.session_of(utc(2024, 3, 11, 20, 0)), None);
        // Early close: 13:00 EST = 18:00 UTC on 2024-11-29.
        assert!(CAL.session_of(utc(2024, 11, 29, 17, 59)).is_some());
        assert_eq!(CAL.session_of(utc(2024, 11, 29, 18, 0)), None);

        // last_completed_session before / at / after the close.
        assert_eq!(CAL.last_completed_session(utc(2024, 3, 11, 19, 59)), date(2024, 3, 8));
        assert_eq!(CAL.last_completed_session(utc(2024, 3, 11, 20, 0)), date(2024, 3, 11));
        // Weekend and holiday mornings.
        assert_eq!(CAL.last_completed_session(utc(2024, 3, 10, 3, 0)), date(2024, 3, 8));
        assert_eq!(CAL.last_completed_session(utc(2024, 4, 1, 12, 0)), date(2024, 3, 28));
        assert_eq!(CAL.last_completed_session(utc(2024, 11, 29, 18, 0)), date(2024, 11, 29));
    }

    #[test]
    fn session_serializes() {
        fn assert_serialize<T: Serialize>() {}
        assert_serialize::<Session>();
    }
}
