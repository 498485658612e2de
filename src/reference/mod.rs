//! Reference data beside the bars: corporate actions ([`corporate_actions`]), and the adjustment
//! factors read-time adjustment derives from them.

pub mod corporate_actions;
