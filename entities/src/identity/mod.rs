//! Identity rows: customers and their refresh tokens.

pub mod customer;
pub mod refresh_token;
