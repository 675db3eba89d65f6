//! The rewards context: each customer's points and the ledger that explains them.

pub mod account;
pub mod entry;
