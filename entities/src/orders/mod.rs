//! The orders context: orders, their lines (a price snapshot) and their timelines.

pub mod line;
pub mod order;
pub mod timeline;
