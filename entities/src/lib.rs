//! SeaORM entities: the rows each bounded context stores, one module per context.
//!
//! A context uses only its own module; rows never cross a context boundary. GraphQL types are
//! separate and built from these rows by `From` conversions in each subgraph.

pub mod carts;
pub mod catalog;
pub mod fulfillment;
pub mod identity;
pub mod inventory;
pub mod notifications;
pub mod orders;
pub mod payments;
pub mod reporting;
pub mod rewards;
