//! The carts context: guests' and customers' carts and their lines.

pub mod cart;
pub mod line;
