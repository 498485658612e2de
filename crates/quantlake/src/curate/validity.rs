//! A raw bar's validity in Rust, for the native minute stage: `validity.sql`'s checks in its order,
//! so both stages refuse the same bars with the same reasons (a test runs both on the same rows).

/// Why a raw bar is refused, or `None` for a valid bar. `is_session`: its date is an NYSE session.
pub(super) fn refusal(
    is_session: bool,
    open: Option<f64>,
    high: Option<f64>,
    low: Option<f64>,
    close: Option<f64>,
    volume: Option<f64>,
) -> Option<&'static str> {
    if !is_session {
        return Some("not an NYSE session");
    }
    let (Some(open), Some(high), Some(low), Some(close)) = (open, high, low, close) else {
        return Some("missing price");
    };
    if !(open.is_finite() && high.is_finite() && low.is_finite() && close.is_finite()) {
        return Some("NaN or infinite price");
    }
    if open.min(high).min(low).min(close) <= 0.0 {
        return Some("price <= 0");
    }
    if low > open.min(close) || high < open.max(close) {
        return Some("OHLC out of order (needs low <= open, close <= high)");
    }
    match volume {
        Some(v) if v.is_finite() && v >= 0.0 => None,
        _ => Some("missing, negative or infinite volume"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Row = (bool, Option<f64>, Option<f64>, Option<f64>, Option<f64>, Option<f64>);

    #[test]
    fn refuses_what_validity_sql_refuses() {
        let (nan, inf) = (f64::NAN, f64::INFINITY);
        let ok = (true, Some(10.0), Some(11.0), Some(9.0), Some(10.5), Some(100.0));
        let mut rows: Vec<Row> = vec![
            ok,
            (false, None, None, None, None, None),
            (true, None, Some(11.0), Some(9.0), Some(10.5), Some(100.0)),
            (true, Some(10.0), Some(11.0), Some(9.0), None, Some(100.0)),
            (true, Some(nan), Some(11.0), Some(9.0), Some(10.5), Some(100.0)),
            (true, Some(10.0), Some(inf), Some(9.0), Some(10.5), Some(100.0)),
            (true, Some(10.0), Some(11.0), Some(-inf), Some(10.5), Some(100.0)),
            (true, Some(10.0), Some(11.0), Some(0.0), Some(10.5), Some(100.0)),
            (true, Some(10.0), Some(11.0), Some(-1.0), Some(10.5), Some(100.0)),
            (true, Some(10.0), Some(11.0), Some(10.2), Some(10.5), Some(100.0)),
            (true, Some(10.0), Some(10.4), Some(9.0), Some(10.5), Some(100.0)),
            (true, Some(10.0), Some(10.0), Some(10.0), Some(10.0), Some(0.0)),
            (true, Some(10.0), Some(11.0), Some(9.0), Some(10.5), None),
            (true, Some(10.0), Some(11.0), Some(9.0), Some(10.5), Some(-1.0)),
            (true, Some(10.0), Some(11.0), Some(9.0), Some(10.5), Some(nan)),
            (true, Some(10.0), Some(11.0), Some(9.0), Some(10.5), Some(inf)),
            (true, Some(nan), Some(11.0), Some(-1.0), Some(10.5), Some(-1.0)),
        ];
        rows.push((true, Some(-1.0), Some(11.0), Some(9.0), Some(10.5), Some(100.0)));
        let conn = duckdb::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (i INTEGER, is_session BOOLEAN, open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE)").unwrap();
        let mut insert = conn.prepare("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)").unwrap();
        for (i, r) in rows.iter().enumerate() {
            insert.execute(duckdb::params![i as i32, r.0, r.1, r.2, r.3, r.4, r.5]).unwrap();
        }
        let sql = format!("SELECT {} FROM t ORDER BY i", include_str!("validity.sql"));
        let expected: Vec<Option<String>> =
            conn.prepare(&sql).unwrap().query_map([], |row| row.get(0)).unwrap().map(|r| r.unwrap()).collect();
        let got: Vec<Option<String>> =
            rows.iter().map(|r| refusal(r.0, r.1, r.2, r.3, r.4, r.5).map(String::from)).collect();
        assert_eq!(got, expected);
        assert_eq!(
            got.iter().flatten().count(),
            rows.len() - 2,
            "only the first row and the zero-volume flat bar are valid"
        );
    }
}
