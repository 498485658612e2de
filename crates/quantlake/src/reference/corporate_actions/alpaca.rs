//! Splits and cash dividends from Alpaca: `/v1beta1/corporate-actions`.

use super::*;

/// Alpaca rows per page, the most the endpoint allows.
const ALPACA_LIMIT: u32 = 1000;

#[derive(Deserialize)]
struct AlpacaPage {
    #[serde(default)]
    corporate_actions: Option<AlpacaActions>,
    next_page_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct AlpacaActions {
    #[serde(default)]
    forward_splits: Option<Vec<AlpacaSplit>>,
    #[serde(default)]
    reverse_splits: Option<Vec<AlpacaSplit>>,
    #[serde(default)]
    cash_dividends: Option<Vec<AlpacaDividend>>,
}

#[derive(Deserialize)]
struct AlpacaSplit {
    id: Option<String>,
    symbol: Symbol,
    old_rate: f64,
    new_rate: f64,
    ex_date: Option<NaiveDate>,
    record_date: Option<NaiveDate>,
    payable_date: Option<NaiveDate>,
}

#[derive(Deserialize)]
struct AlpacaDividend {
    id: Option<String>,
    symbol: Symbol,
    rate: f64,
    #[serde(default)]
    special: Option<bool>,
    ex_date: Option<NaiveDate>,
    record_date: Option<NaiveDate>,
    payable_date: Option<NaiveDate>,
}

/// Forward and reverse splits and cash dividends of `symbols` from Alpaca between `start` and `end`
/// (symbols in groups of `symbols_per_request`, following `page_token`), the API root, and the rows
/// left out (without an ex-date: the research notes' rule is to use the ex-date, never the payable date).
pub async fn fetch_alpaca(
    settings: &AlpacaSettings,
    symbols: &[Symbol],
    start: NaiveDate,
    end: NaiveDate,
) -> Result<(Vec<CorporateAction>, String, BTreeMap<String, usize>)> {
    let http = RestClient::new("alpaca", &settings.http)?;
    let base = base_url("alpaca", &settings.base_url)?;
    let headers = crate::sources::alpaca::auth_headers(settings)?;
    let mut out = Vec::new();
    let mut skipped = BTreeMap::new();
    for group in symbols.chunks(settings.symbols_per_request.max(1)) {
        let what = format!("{} corporate actions {start}..{end}", group.join(","));
        let mut token: Option<String> = None;
        let mut seen = HashSet::new();
        for page_no in 1.. {
            let page_what = format!("{what} (page {page_no})");
            let mut url = base.clone();
            url.path_segments_mut()
                .map_err(|_| Error::Config("alpaca.base_url cannot take a path".into()))?
                .pop_if_empty()
                .extend(["v1beta1", "corporate-actions"]);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("symbols", &group.join(","))
                    .append_pair("types", "forward_split,reverse_split,cash_dividend")
                    .append_pair("start", &start.to_string())
                    .append_pair("end", &end.to_string())
                    .append_pair("limit", &ALPACA_LIMIT.to_string());
                if let Some(t) = &token {
                    q.append_pair("page_token", t);
                }
            }
            let body = http.get(&url, &headers, &page_what).await?;
            let page: AlpacaPage = parse_json(&http, &page_what, &body)?;
            let actions = page.corporate_actions.unwrap_or_default();
            let splits =
                actions.forward_splits.into_iter().flatten().chain(actions.reverse_splits.into_iter().flatten());
            for s in splits {
                let Some(ex) = s.ex_date else {
                    *skipped.entry("no ex_date".to_string()).or_default() += 1;
                    continue;
                };
                let mut a = CorporateAction::split(s.symbol.clone(), ex, ActionSource::Alpaca, s.old_rate, s.new_rate);
                a.check(&format!("alpaca split of {} on {ex}", s.symbol))?;
                (a.vendor_id, a.record_date, a.pay_date) = (s.id, s.record_date, s.payable_date);
                out.push(a);
            }
            for d in actions.cash_dividends.into_iter().flatten() {
                let Some(ex) = d.ex_date else {
                    *skipped.entry("no ex_date".to_string()).or_default() += 1;
                    continue;
                };
                let mut a = CorporateAction::dividend(d.symbol.clone(), ex, ActionSource::Alpaca, d.rate);
                a.check(&format!("alpaca dividend of {} on {ex}", d.symbol))?;
                (a.vendor_id, a.record_date, a.pay_date) = (d.id, d.record_date, d.payable_date);
                a.dividend_type = Some(if d.special == Some(true) { "SC" } else { "CD" }.to_string());
                out.push(a);
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => {
                    if !seen.insert(t.clone()) {
                        return Err(http.error(&page_what, "page_token repeats an earlier page's; stopping".into()));
                    }
                    token = Some(t);
                }
                None => break,
            }
        }
    }
    Ok((out, base.to_string(), skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpaca_null_lists_parse() {
        let page: AlpacaPage =
            serde_json::from_str(r#"{"corporate_actions":{"cash_dividends":null},"next_page_token":null}"#).unwrap();
        assert!(page.corporate_actions.unwrap().cash_dividends.is_none());
    }
}
