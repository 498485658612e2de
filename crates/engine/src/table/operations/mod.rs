//! Table operations, one module each, all writing through [`crate::table::transaction`]: `write`
//! (one dataset), `stage` (several datasets at once), `restore` (one dataset or the whole lake), `tag`
//! (named snapshots of one dataset or the whole lake), `vacuum`, `compact` (files as the contract
//! writes them now); `history` and `verify` only read.

pub mod compact;
pub mod history;
pub mod restore;
pub mod stage;
pub mod tag;
pub mod vacuum;
pub mod verify;
pub mod write;
