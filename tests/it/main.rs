//! End-to-end tests: the real services over HTTP on port 0, on SQLite by default and on
//! PostgreSQL when `TEST_DATABASE_URL` is set. One test binary keeps link time down.

mod after_purchase;
mod carts;
mod catalog;
mod checkout;
mod fulfillment;
mod gateway;
mod identity;
mod inventory;
mod live;
mod live_gateway;
mod notifications;
mod payments;
mod platform;
mod rewards;
mod smtp_sink;
mod support;
mod ws_client;
