//! Database migrations, one migrator per bounded context, each run against that context's own
//! database (its SQLite file or its PostgreSQL schema). Migrations are written once with the
//! schema builder and run on SQLite and PostgreSQL alike; the few backend-specific pieces
//! (full-text search) are chosen by backend inside the migration.

pub mod carts;
pub mod catalog;
pub mod common;
pub mod fulfillment;
pub mod identity;
pub mod inventory;
pub mod notifications;
pub mod orders;
pub mod payments;
pub mod reporting;
pub mod rewards;

pub use sea_orm_migration::MigratorTrait;
