//! Securities from Interactive Brokers: the contract details TWS / IB Gateway gives for a stock ticker
//! (`reqContractDetails`): its IB contract id, primary exchange, currency and long name. IB answers
//! with today's ticker only, so each security's one ticker interval is open at both ends, as the
//! migration's are; a file or Polygon (ranked above) gives the history, and the contract id lets them
//! meet: an import matches stored securities by `con_id` before their tickers.

use futures::{StreamExt, TryStreamExt};

use super::*;
use crate::sources::tws::{TwsSettings, TwsSource};

/// The securities IB lists for `symbols` (a ticker IB does not know delivers none, and is returned
/// apart), and where they came from.
pub async fn fetch_tws(settings: &TwsSettings, symbols: &[Symbol]) -> Result<(Vec<Delivered>, Vec<Symbol>, String)> {
    let source = TwsSource::connect(settings).await?;
    let found: Vec<(Symbol, Vec<crate::sources::tws::StockDetails>)> = futures::stream::iter(symbols.iter().map(|s| {
        let source = &source;
        async move { Ok::<_, Error>((s.clone(), source.stock_details(s.as_str()).await?)) }
    }))
    .buffered(source.concurrency())
    .try_collect()
    .await?;
    let mut delivered = Vec::new();
    let mut unknown = Vec::new();
    for (symbol, details) in found {
        // One stock per ticker on the configured exchange and currency; IB may list a ticker's
        // other kinds (a warrant, a unit) too.
        let stocks: Vec<_> =
            details.into_iter().filter(|d| d.sec_type == "STK" && d.symbol == symbol.as_str()).collect();
        if stocks.is_empty() {
            unknown.push(symbol);
            continue;
        }
        if stocks.len() > 1 {
            let ids: Vec<String> = stocks.iter().map(|d| d.con_id.to_string()).collect();
            return Err(Error::invalid(format!(
                "IB lists {} stocks for {symbol} (contract ids {}); set tws.exchange and tws.currency so one is meant",
                stocks.len(),
                ids.join(", ")
            )));
        }
        let d = &stocks[0];
        delivered.push(Delivered {
            security_id: None,
            attributes: Attributes {
                kind: Some(d.sec_type.clone()),
                name: d.long_name.clone(),
                con_id: Some(i64::from(d.con_id)),
                primary_exchange: d.primary_exchange.clone(),
                currency: d.currency.clone(),
                ..Attributes::default()
            },
            tickers: vec![DeliveredTicker {
                ticker: symbol.clone(),
                exchange: None,
                valid: Interval::default(),
                vendor_date: None,
                what: "its contract details".into(),
            }],
            member: None,
            what: format!("IB contract {} ({symbol})", d.con_id),
        });
    }
    Ok((delivered, unknown, format!("tws {}:{}", settings.host, settings.port)))
}
