//! The Better Store launcher: starts the platform's services, in one process or one at a time.
//!
//! - [`platform`] assembles services from settings and runs them until shutdown;
//! - [`services`] builds one bounded context's server from a database connection;
//! - [`seed`] loads the demo store (accounts, catalog, reviews);
//! - [`sdl`] exports each subgraph's SDL into `schema/`;
//! - [`cli`] is the command line (`serve`, `migrate`, `seed`, `schema`).

pub mod cli;
pub mod platform;
pub mod sdl;
pub mod seed;
pub mod services;

pub use platform::{Listen, Platform, Service};
