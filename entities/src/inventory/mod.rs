//! The inventory context: stock per product, and reservations of it for orders.

pub mod reservation;
pub mod stock;
