//! Reference data beside the bars: [`fundamentals`] (company filings, point in time by filing date).

pub mod fundamentals;
