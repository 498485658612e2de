//! Survivorship-free sets: a set's rows are those of the securities that were members of the universe
//! on each row's decision date, by the security master as the set's snapshot knew it. A security
//! delisted later stays in sets of the dates before; one that joined later is not in sets before.

use std::collections::{BTreeMap, HashMap, HashSet};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::calendar::NyseCalendar;
use crate::error::{Error, Result};
use crate::reference::securities::SecurityMaster;
use crate::symbol::Symbol;
use crate::table::{AsOf, Lake};

/// Which rows a set holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum UniverseFilter {
    /// The members of this universe on each decision date when the security master records it, else
    /// every symbol with data (a lake without membership). The default, with the configured default
    /// universe.
    Default(String),
    /// The members of this universe on each decision date; an error when it is not recorded.
    Named(String),
    /// Every symbol with data, members or not (the survivors bias a ticker list has).
    All,
}

impl UniverseFilter {
    /// A `--universe` flag's filter: a universe's name, `all` for every symbol with data, or (no
    /// flag) `default_universe`'s members when the security master records them.
    pub fn from_flag(flag: Option<&str>, default_universe: &str) -> Self {
        match flag {
            None => UniverseFilter::Default(default_universe.to_string()),
            Some("all") => UniverseFilter::All,
            Some(name) => UniverseFilter::Named(name.to_string()),
        }
    }
}

impl Default for UniverseFilter {
    fn default() -> Self {
        UniverseFilter::Default(crate::reference::securities::SecuritySettings::default().default_universe)
    }
}

/// The members of a universe on each date, as tickers (each member's ticker that day).
pub(crate) struct Members {
    pub universe: String,
    /// The security master's snapshots read.
    pub snapshots: BTreeMap<String, u64>,
    master: SecurityMaster,
    by_date: std::sync::Mutex<HashMap<NaiveDate, std::sync::Arc<HashSet<Symbol>>>>,
}

impl Members {
    /// The membership `filter` asks for, at `as_of`; `None` when every row stays.
    pub async fn load(lake: &Lake, filter: &UniverseFilter, as_of: &AsOf) -> Result<Option<Self>> {
        let (name, required) = match filter {
            UniverseFilter::All => return Ok(None),
            UniverseFilter::Default(name) => (name, false),
            UniverseFilter::Named(name) => (name, true),
        };
        let master = SecurityMaster::load(lake, as_of).await?;
        match master.check_universe(name) {
            Ok(()) => {}
            Err(e) if required => return Err(e),
            Err(_) => return Ok(None),
        }
        Ok(Some(Self {
            universe: name.clone(),
            snapshots: master.snapshots.clone(),
            master,
            by_date: Default::default(),
        }))
    }

    /// The tickers of the members on `date`.
    fn on(&self, date: NaiveDate) -> std::sync::Arc<HashSet<Symbol>> {
        let mut cache = self.by_date.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .entry(date)
            .or_insert_with(|| {
                let tickers = self.master.members(&self.universe, date).into_iter().filter_map(|m| m.ticker).collect();
                std::sync::Arc::new(tickers)
            })
            .clone()
    }

    /// `batch`'s rows whose symbol was a member on the session of its `decision_time`, and how many
    /// were left out.
    pub fn keep(&self, batch: RecordBatch) -> Result<(RecordBatch, u64)> {
        let symbol = batch
            .column_by_name("symbol")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| Error::invalid("set rows have no utf8 'symbol' column"))?;
        let decision = batch
            .column_by_name("decision_time")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| Error::invalid("set rows have no 'decision_time' column"))?;
        // Rows come in runs of one symbol and one day: the day's New York bounds and the run's answer
        // are worked out once, not per row.
        let mut day: Option<(i64, i64, std::sync::Arc<HashSet<Symbol>>)> = None;
        let mut run: Option<(usize, bool)> = None;
        let mut mask = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let us = decision.value(i);
            if !day.as_ref().is_some_and(|(start, end, _)| *start <= us && us < *end) {
                let Some(at) = DateTime::from_timestamp_micros(us) else {
                    mask.push(false);
                    continue;
                };
                let date = NyseCalendar.trading_date(at);
                let start_of =
                    |d: Option<NaiveDate>| d.and_then(|d| NyseCalendar.day_start(d)).map(|t| t.timestamp_micros());
                let (start, end) = match (start_of(Some(date)), start_of(date.succ_opt())) {
                    (Some(s), Some(e)) => (s, e),
                    _ => (us, us + 1),
                };
                day = Some((start, end, self.on(date)));
                run = None;
            }
            let Some((_, _, members)) = &day else {
                mask.push(false);
                continue;
            };
            let keep = match run {
                Some((j, keep)) if symbol.value(j) == symbol.value(i) => keep,
                _ => {
                    let keep = symbol.is_valid(i) && members.contains(symbol.value(i));
                    run = Some((i, keep));
                    keep
                }
            };
            mask.push(keep);
        }
        let mask = BooleanArray::from(mask);
        let left_out = (mask.len() - mask.true_count()) as u64;
        if left_out == 0 {
            return Ok((batch, 0));
        }
        Ok((arrow::compute::filter_record_batch(&batch, &mask)?, left_out))
    }
}
