//! Date rules behind the NYSE calendar: recurring holidays, one-off closures
//! and 13:00 early closes.
//!
//! Everything here is pure date arithmetic on [`NaiveDate`] in New York local
//! dates; turning a date into UTC session times is the job of the parent
//! module.
//!
//! The recurring rules are the ones the NYSE has applied since 2000 and they
//! are applied unchanged to any year (before 2000 they are only an
//! approximation of history; after 2030 they are a forecast). The one-off
//! lists below are verified for 2000-2030 only.

use chrono::{Datelike, Duration, NaiveDate, Weekday};

/// Weekday closures that no recurring rule produces: (year, month, day, name).
///
/// Verified for 2000-2030. Anything the exchange decides after this list was
/// written (e.g. a future national day of mourning) must be added here.
const SPECIAL_CLOSURES: &[(i32, u32, u32, &str)] = &[
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
];

/// 13:00 early closes that no recurring rule produces: (year, month, day).
///
/// 2003-12-26: the Friday after Christmas 2003 closed at 13:00 by special
/// decision (the same list is carried by the pandas/exchange calendars).
const SPECIAL_EARLY_CLOSES: &[(i32, u32, u32)] = &[(2003, 12, 26)];

fn ymd(d: NaiveDate) -> (i32, u32, u32) {
    (d.year(), d.month(), d.day())
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Easter Sunday by the anonymous Gregorian (Meeus/Jones/Butcher) algorithm.
///
/// Euclidean division keeps it total for negative years; `None` only where
/// chrono cannot represent the date.
pub(super) fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let y = i64::from(year);
    let a = y.rem_euclid(19);
    let b = y.div_euclid(100);
    let c = y.rem_euclid(100);
    let d = b.div_euclid(4);
    let e = b.rem_euclid(4);
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c.div_euclid(4);
    let k = c.rem_euclid(4);
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l).div_euclid(451);
    let month = (h + l - 7 * m + 114).div_euclid(31);
    let day = (h + l - 7 * m + 114).rem_euclid(31) + 1;
    // month is 3 or 4 and day 1..=31 by construction.
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// The `n`-th (1-based) `weekday` of a month.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

/// The last `weekday` on or before `year-month-last_day`.
fn last_weekday(year: i32, month: u32, last_day: u32, weekday: Weekday) -> Option<NaiveDate> {
    let end = NaiveDate::from_ymd_opt(year, month, last_day)?;
    let back = (7 + end.weekday().num_days_from_monday() - weekday.num_days_from_monday()) % 7;
    end.checked_sub_signed(Duration::days(i64::from(back)))
}

/// Saturday holidays move to Friday, Sunday holidays to Monday (NYSE rule 7.2
/// for Independence Day, Juneteenth and Christmas).
fn nearest_weekday(d: NaiveDate) -> Option<NaiveDate> {
    match d.weekday() {
        Weekday::Sat => d.pred_opt(),
        Weekday::Sun => d.succ_opt(),
        _ => Some(d),
    }
}

/// New Year's Day: Sunday moves to Monday, but a Saturday New Year is *not*
/// observed on the preceding Friday (Dec 31 stays a session, NYSE rule 7.2;
/// e.g. 2004-12-31, 2010-12-31 and 2021-12-31 were sessions).
fn new_years_observed(year: i32) -> Option<NaiveDate> {
    let d = NaiveDate::from_ymd_opt(year, 1, 1)?;
    match d.weekday() {
        Weekday::Sat => None,
        Weekday::Sun => d.succ_opt(),
        _ => Some(d),
    }
}

/// The recurring full-day holidays of `year`, as observed (always weekdays,
/// always inside `year`). Entries are `None` where a rule does not apply.
fn rule_holidays(year: i32) -> [Option<(NaiveDate, &'static str)>; 10] {
    let named = |d: Option<NaiveDate>, name: &'static str| d.map(|d| (d, name));
    let on = |m: u32, day: u32| NaiveDate::from_ymd_opt(year, m, day).and_then(nearest_weekday);
    [
        named(new_years_observed(year), "New Year's Day"),
        // The NYSE first closed for MLK Day in 1998.
        named(nth_weekday(year, 1, Weekday::Mon, 3).filter(|_| year >= 1998), "Martin Luther King Jr. Day"),
        named(nth_weekday(year, 2, Weekday::Mon, 3), "Washington's Birthday"),
        named(easter_sunday(year).and_then(|e| e.checked_sub_signed(Duration::days(2))), "Good Friday"),
        named(last_weekday(year, 5, 31, Weekday::Mon), "Memorial Day"),
        // Juneteenth became an NYSE holiday in 2022 (2021-06-18 was a session).
        named(on(6, 19).filter(|_| year >= 2022), "Juneteenth"),
        named(on(7, 4), "Independence Day"),
        named(nth_weekday(year, 9, Weekday::Mon, 1), "Labor Day"),
        named(thanksgiving(year), "Thanksgiving Day"),
        named(on(12, 25), "Christmas Day"),
    ]
}

/// Thanksgiving: fourth Thursday of November.
fn thanksgiving(year: i32) -> Option<NaiveDate> {
    nth_weekday(year, 11, Weekday::Thu, 4)
}

/// Name of the full-day closure on weekday `d`, or `None` if `d` is a weekend
/// or a regular session.
pub(super) fn closure_name(d: NaiveDate) -> Option<&'static str> {
    if is_weekend(d) {
        return None;
    }
    let key = ymd(d);
    if let Some(&(_, _, _, name)) = SPECIAL_CLOSURES.iter().find(|&&(y, m, dd, _)| (y, m, dd) == key) {
        return Some(name);
    }
    rule_holidays(d.year()).into_iter().flatten().find(|&(h, _)| h == d).map(|(_, name)| name)
}

/// True if `d` is a trading session (weekday and not a closure).
pub(super) fn is_session(d: NaiveDate) -> bool {
    !is_weekend(d) && closure_name(d).is_none()
}

/// Number of distinct weekday closures falling in `[lo, hi]`, which must lie
/// inside one calendar year. Lets the parent count sessions a year at a time.
pub(super) fn closures_within(lo: NaiveDate, hi: NaiveDate) -> i64 {
    let year = lo.year();
    let rules = rule_holidays(year);
    let in_range = |d: NaiveDate| lo <= d && d <= hi;
    // Rule holidays are distinct weekdays by construction (see tests).
    let from_rules = rules.iter().flatten().filter(|&&(d, _)| in_range(d)).count();
    // One-offs, skipping any that coincide with a rule holiday.
    let from_specials = SPECIAL_CLOSURES
        .iter()
        .filter(|&&(y, _, _, _)| y == year)
        .filter_map(|&(y, m, d, _)| NaiveDate::from_ymd_opt(y, m, d))
        .filter(|&d| in_range(d) && !is_weekend(d))
        .filter(|&d| !rules.iter().flatten().any(|&(h, _)| h == d))
        .count();
    (from_rules + from_specials) as i64
}

/// True if session `d` closes at 13:00 New York time. Only meaningful for a
/// date that is a session.
///
/// Rules, checked against the NYSE's published schedules for 2000-2025:
/// * Independence Day eve: July 3 closes early when it is a Monday, Tuesday
///   or Thursday session. A Wednesday July 3 closes early only from 2013 on;
///   before 2013 the half day went to Friday July 5 instead (2002-07-05;
///   2002-07-03 was a full day). A Friday July 3 is itself the observed
///   holiday (2009, 2015, 2020, 2026), and no early close precedes it.
/// * The Friday after Thanksgiving, every year.
/// * Christmas Eve on a Monday-Thursday. A Friday Dec 24 is the observed
///   Christmas holiday (2004, 2010, 2021, 2027); a Sunday Christmas gives no
///   early close on Friday Dec 23.
/// * One-offs in [`SPECIAL_EARLY_CLOSES`].
///
/// Not modelled (they do not fit the 390/210-minute regular schedule): delayed
/// openings such as 2002-09-11 (noon) and the few-minute moments of silence,
/// and the unscheduled 15:56 halt on 2005-06-01.
pub(super) fn is_early_close(d: NaiveDate) -> bool {
    let (year, month, day) = ymd(d);
    let wd = d.weekday();
    let july = month == 7
        && match (day, wd) {
            (3, Weekday::Mon | Weekday::Tue | Weekday::Thu) => true,
            (3, Weekday::Wed) => year >= 2013,
            (5, Weekday::Fri) => year < 2013,
            _ => false,
        };
    let after_thanksgiving = thanksgiving(year).and_then(|t| t.succ_opt()) == Some(d);
    let christmas_eve =
        month == 12 && day == 24 && matches!(wd, Weekday::Mon | Weekday::Tue | Weekday::Wed | Weekday::Thu);
    july || after_thanksgiving || christmas_eve || SPECIAL_EARLY_CLOSES.contains(&(year, month, day))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    #[test]
    fn easter_known_dates() {
        for (y, m, d) in [
            (2000, 4, 23),
            (2008, 3, 23),
            (2011, 4, 24),
            (2019, 4, 21),
            (2024, 3, 31),
            (2025, 4, 20),
            (2038, 4, 25),
            (1818, 3, 22),
        ] {
            assert_eq!(easter_sunday(y), Some(date(y, m, d)), "Easter {y}");
        }
        // Never panics, even at the edges of chrono's range or below year 0.
        let _ = easter_sunday(-262_144);
        let _ = easter_sunday(262_143);
        let _ = easter_sunday(i32::MAX);
    }

    #[test]
    fn observance_rules() {
        // Saturday New Year is not observed on Dec 31.
        assert_eq!(new_years_observed(2022), None);
        assert_eq!(new_years_observed(2023), Some(date(2023, 1, 2)));
        assert_eq!(last_weekday(2024, 5, 31, Weekday::Mon), Some(date(2024, 5, 27)));
        assert_eq!(last_weekday(2021, 5, 31, Weekday::Mon), Some(date(2021, 5, 31)));
        assert_eq!(thanksgiving(2024), Some(date(2024, 11, 28)));
        assert_eq!(thanksgiving(2018), Some(date(2018, 11, 22)));
    }

    #[test]
    fn rule_holidays_are_weekdays_in_year() {
        for year in 1990..=2040 {
            for (d, name) in rule_holidays(year).into_iter().flatten() {
                assert_eq!(d.year(), year, "{name} {d}");
                assert!(!is_weekend(d), "{name} {d}");
            }
            let mut days: Vec<_> = rule_holidays(year).into_iter().flatten().map(|(d, _)| d).collect();
            let n = days.len();
            days.sort_unstable();
            days.dedup();
            assert_eq!(days.len(), n, "distinct rule holidays in {year}");
        }
    }

    #[test]
    fn special_lists_are_valid_weekdays() {
        for &(y, m, d, name) in SPECIAL_CLOSURES {
            let day = date(y, m, d);
            assert!(!is_weekend(day), "{name} {day}");
        }
        for &(y, m, d) in SPECIAL_EARLY_CLOSES {
            assert!(is_session(date(y, m, d)));
        }
    }
}
