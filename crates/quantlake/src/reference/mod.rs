//! Reference data beside the bars: the security master ([`securities`]: stable security ids, ticker
//! histories, universes over time), corporate actions ([`corporate_actions`]), and the adjustment
//! factors read-time adjustment derives from them; [`fundamentals`] (company filings, point in time by
//! filing date).

pub mod corporate_actions;
pub mod fundamentals;
pub mod securities;
mod text_rows;
