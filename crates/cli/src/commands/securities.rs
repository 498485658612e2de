//! The security master's commands: `securities import|migrate|show|history|resolve` and
//! `universe show --at`.

use chrono::{NaiveDate, Utc};

use super::super::Context;
use super::super::args::SecuritiesCommand;
use super::super::output::Output;
use quantlake::error::{Error, Result};
use quantlake::outcome::Outcome;
use quantlake::reference::securities::{self, ImportRequest, SecurityMaster, check_universe_name};
use quantlake::security::SecurityId;
use quantlake::symbol::SymbolList;
use quantlake::table::AsOf;

/// `securities ...`.
pub async fn securities(ctx: &Context, cmd: SecuritiesCommand, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let settings = &ctx.config.securities;
    let today = Utc::now().date_naive();
    match cmd {
        SecuritiesCommand::Import { source, path, symbols, universe } => {
            let request = ImportRequest { source, path, symbols: symbols.map(SymbolList::into_vec), universe };
            let report = securities::import(&lake, settings, ctx.config.sources(), &request).await?;
            out.securities_import(&report);
            if !report.not_found.is_empty() {
                let names: Vec<&str> = report.not_found.iter().map(|s| s.as_str()).collect();
                out.warning(&format!("{} unknown to {}: nothing imported for them", names.join(", "), report.source));
                return Ok(Outcome::Warning);
            }
        }
        SecuritiesCommand::Migrate => {
            let report = securities::migrate(&lake, settings).await?;
            out.securities_import(&report);
        }
        SecuritiesCommand::Show { symbols, at, as_of } => {
            let at = at.unwrap_or(today);
            let master = SecurityMaster::load(&lake, &as_of).await?;
            let mut unknown = Vec::new();
            let ids: Vec<SecurityId> = match symbols {
                None => master.ids().into_iter().collect(),
                Some(list) => {
                    let mut ids = Vec::new();
                    for t in list.iter() {
                        match master.resolve(t, at, None)? {
                            Some(id) => ids.push(id),
                            None => unknown.push(t.to_string()),
                        }
                    }
                    ids
                }
            };
            let rows: Vec<_> = ids
                .iter()
                .filter_map(|id| master.security(*id).map(|s| (s, master.ticker_of(*id, at).cloned())))
                .collect();
            out.securities(&rows, at);
            if !unknown.is_empty() {
                out.warning(&format!("{} named no security on {at}", unknown.join(", ")));
                return Ok(Outcome::Warning);
            }
        }
        SecuritiesCommand::History { security, at, as_of } => {
            let master = SecurityMaster::load(&lake, &as_of).await?;
            let at = at.unwrap_or(today);
            let id = match security.parse::<SecurityId>() {
                Ok(id) if master.security(id).is_some() => id,
                _ => {
                    let ticker = security.parse().map_err(|_| {
                        Error::invalid(format!("'{security}' is neither a known security id nor a ticker"))
                    })?;
                    master.resolve(&ticker, at, None)?.ok_or_else(|| {
                        Error::invalid(format!("{security} names no security on {at} (--at chooses the date)"))
                    })?
                }
            };
            let view = master.security(id).ok_or_else(|| Error::invalid(format!("no security {id}")))?;
            let used: Vec<_> = master.history(id).into_iter().cloned().collect();
            let (_, rows, _) = master.rows();
            let all: Vec<_> = rows.iter().filter(|r| r.security_id == id).cloned().collect();
            out.security_history(&view, &all, &used);
        }
        SecuritiesCommand::Resolve { ticker, at, exchange, as_of } => {
            let at = at.unwrap_or(today);
            let master = SecurityMaster::load(&lake, &as_of).await?;
            match master.resolve(&ticker, at, exchange.as_deref())? {
                Some(id) => {
                    let view = master.security(id).ok_or_else(|| Error::invalid(format!("no security {id}")))?;
                    let interval =
                        master.history(id).into_iter().find(|r| r.ticker == ticker && r.valid.contains(at)).cloned();
                    out.resolved(&ticker, at, &view, interval.as_ref());
                }
                None => {
                    out.warning(&format!(
                        "{ticker} names no security on {at} (`quantlake securities show` lists them)"
                    ));
                    return Ok(Outcome::Warning);
                }
            }
        }
    }
    Ok(Outcome::Ok)
}

/// `universe show --at D`: the members of a universe on a date, from the security master.
pub async fn universe_members(
    ctx: &Context,
    at: NaiveDate,
    universe: Option<String>,
    as_of: &AsOf,
    out: &Output,
) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let settings = &ctx.config.securities;
    let universe = universe.unwrap_or_else(|| settings.default_universe.clone());
    check_universe_name(&universe)?;
    let master = SecurityMaster::load(&lake, as_of).await?;
    master.check_universe(&universe)?;
    let members = master.members(&universe, at);
    out.universe_members(&universe, at, &members, ctx.config.universe.breadth(members.len()));
    Ok(Outcome::Ok)
}
