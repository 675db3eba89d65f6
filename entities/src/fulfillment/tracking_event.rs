//! What the carrier said about a shipment, step by step.

use sea_orm::entity::prelude::*;

/// One tracking event.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tracking_events")]
pub struct Model {
    /// Event id (UUID v7: creation order).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The shipment.
    pub shipment_id: Uuid,
    /// The status the shipment entered.
    pub status: String,
    /// What happened, in words.
    pub description: String,
    /// When.
    pub at: DateTimeUtc,
}

/// No relations declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
