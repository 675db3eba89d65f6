//! An event as reporting received it.

use sea_orm::entity::prelude::*;

/// One event of the history the read model is built from, kept as received.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "report_events")]
pub struct Model {
    /// The event id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Its type, such as `order.confirmed`.
    pub event_type: String,
    /// Its payload's version.
    pub version: i32,
    /// When it happened.
    pub occurred_at: DateTimeUtc,
    /// Its payload.
    pub payload: Json,
    /// When reporting received it (replays go in this order).
    pub received_seq: i64,
}

/// No relations declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
