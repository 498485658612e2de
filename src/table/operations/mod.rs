//! Table operations, one module each. Operations that change a dataset commit through
//! [`crate::table::transaction`]; the others only read the manifest and the files.

pub mod history;
pub mod restore;
pub mod tag;
pub mod vacuum;
pub mod verify;
pub mod write;
