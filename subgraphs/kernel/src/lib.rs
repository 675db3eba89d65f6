//! The shared kernel of Better Store: the small set of concepts every bounded context speaks.
//!
//! It holds value types that must mean the same thing everywhere ([`money::Money`], [`id`],
//! [`email`]), the error model and its mapping to GraphQL error codes ([`error`]), the
//! authenticated caller taken from a verified JWT ([`auth`]), layered configuration
//! ([`config`]), tracing set-up ([`telemetry`]), database connections for SQLite or
//! PostgreSQL ([`db`]), Relay pagination ([`connection`]), the event envelope, outbox, inbox, buses and consumers ([`events`]), the
//! HTTP client anti-corruption layers call other contexts with ([`http_client`]), and the HTTP
//! server every subgraph runs on ([`server`]). It knows no commerce rules beyond those values.

pub mod auth;
pub mod catalog_api;
pub mod config;
pub mod connection;
pub mod db;
pub mod demo;
pub mod email;
pub mod error;
pub mod events;
pub mod http_client;
pub mod id;
pub mod money;
pub mod server;
pub mod telemetry;

pub use error::{AppError, AppResult};
