//! Splits and dividends from Polygon: `/v3/reference/splits` and `/v3/reference/dividends`.

use super::*;

/// Polygon rows per page, the most `/v3/reference` allows.
const POLYGON_LIMIT: u32 = 1000;

#[derive(Deserialize)]
struct PolygonSplit {
    id: Option<String>,
    ticker: Symbol,
    execution_date: NaiveDate,
    split_from: f64,
    split_to: f64,
}

#[derive(Deserialize)]
struct PolygonDividend {
    id: Option<String>,
    ticker: Symbol,
    ex_dividend_date: NaiveDate,
    cash_amount: f64,
    currency: Option<String>,
    declaration_date: Option<NaiveDate>,
    record_date: Option<NaiveDate>,
    pay_date: Option<NaiveDate>,
    frequency: Option<i64>,
    dividend_type: Option<String>,
}

/// Splits and dividends of `symbols` from Polygon (one paginated request per symbol and kind), and
/// the API root they came from.
pub async fn fetch_polygon(
    settings: &PolygonSettings,
    symbols: &[Symbol],
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
) -> Result<(Vec<CorporateAction>, String)> {
    let http = RestClient::new("polygon", &settings.http)?;
    let base = base_url("polygon", &settings.base_url)?;
    let headers = crate::sources::polygon::auth_headers(settings)?;
    let mut out = Vec::new();
    for symbol in symbols {
        let url = |kind: &str, date_field: &str| -> Result<Url> {
            let mut url = base.clone();
            url.path_segments_mut()
                .map_err(|_| Error::Config("polygon.base_url cannot take a path".into()))?
                .pop_if_empty()
                .extend(["v3", "reference", kind]);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("ticker", symbol).append_pair("limit", &POLYGON_LIMIT.to_string());
                if let Some(s) = start {
                    q.append_pair(&format!("{date_field}.gte"), &s.to_string());
                }
                if let Some(e) = end {
                    q.append_pair(&format!("{date_field}.lte"), &e.to_string());
                }
            }
            Ok(url)
        };
        let splits: Vec<PolygonSplit> = crate::sources::polygon::get_pages(
            &http,
            &base,
            &headers,
            url("splits", "execution_date")?,
            &format!("{symbol} splits"),
        )
        .await?;
        for s in splits {
            let mut a = CorporateAction::split(
                s.ticker.clone(),
                s.execution_date,
                ActionSource::Polygon,
                s.split_from,
                s.split_to,
            );
            a.vendor_id = s.id;
            a.check(&format!("polygon split of {} on {}", s.ticker, s.execution_date))?;
            out.push(a);
        }
        let dividends: Vec<PolygonDividend> = crate::sources::polygon::get_pages(
            &http,
            &base,
            &headers,
            url("dividends", "ex_dividend_date")?,
            &format!("{symbol} dividends"),
        )
        .await?;
        for d in dividends {
            let mut a =
                CorporateAction::dividend(d.ticker.clone(), d.ex_dividend_date, ActionSource::Polygon, d.cash_amount);
            a.check(&format!("polygon dividend of {} on {}", d.ticker, d.ex_dividend_date))?;
            a.vendor_id = d.id;
            a.currency = d.currency;
            a.declaration_date = d.declaration_date;
            a.record_date = d.record_date;
            a.pay_date = d.pay_date;
            a.frequency = d.frequency;
            a.dividend_type = d.dividend_type;
            out.push(a);
        }
    }
    Ok((out, base.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn polygon_split_parses() {
        let body = r#"{"results":[{"execution_date":"2022-07-18","split_from":1,"split_to":20,"ticker":"GOOGL","id":"E1"}],"status":"OK","next_url":"https://api.polygon.io/v3/reference/splits?cursor=X"}"#;
        let page: crate::sources::polygon::Page<PolygonSplit> = serde_json::from_str(body).unwrap();
        let split = &page.results.unwrap()[0];
        assert_eq!(
            (split.split_from, split.split_to, split.id.as_deref(), split.execution_date),
            (1.0, 20.0, Some("E1"), d("2022-07-18"))
        );
        assert!(page.next_url.is_some());
    }
}
