//! The fulfillment context's schema: shipments, their tracking events, the outbox and the
//! inbox.

use sea_orm_migration::prelude::*;

use crate::common::{
    ForgetPublishedOutbox, GuestEmail, PendingOutboxIndex, col, create_inbox, create_outbox,
};

/// Runs the fulfillment migrations in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Fulfillment),
            Box::new(PendingOutboxIndex),
            Box::new(ForgetPublishedOutbox),
            Box::new(GuestEmail { name: "m0002_shipments_guest_email", table: "shipments" }),
        ]
    }
}

/// Shipments, tracking events, outbox and inbox.
struct M0001Fulfillment;

impl MigrationName for M0001Fulfillment {
    fn name(&self) -> &str {
        "m0001_fulfillment"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Fulfillment {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(col("shipments"))
                    .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("order_id")).uuid().not_null().unique_key())
                    .col(ColumnDef::new(col("order_number")).string().not_null())
                    .col(ColumnDef::new(col("customer_id")).uuid().null())
                    .col(ColumnDef::new(col("carrier")).string().not_null())
                    .col(ColumnDef::new(col("tracking_number")).string().not_null().unique_key())
                    .col(ColumnDef::new(col("status")).string().not_null())
                    .col(ColumnDef::new(col("address")).json_binary().not_null())
                    .col(ColumnDef::new(col("items")).json_binary().not_null())
                    .col(ColumnDef::new(col("next_step_at")).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(col("reason")).string().null())
                    .col(ColumnDef::new(col("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(col("updated_at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        // The carrier's clock asks "which parcels are due a step?": only parcels still on
        // their way have a next step, so the index holds those alone.
        manager
            .create_index(
                Index::create()
                    .name("shipments_due")
                    .table(col("shipments"))
                    .col(col("next_step_at"))
                    .and_where(Expr::col(col("next_step_at")).is_not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(col("tracking_events"))
                    .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("shipment_id")).uuid().not_null())
                    .col(ColumnDef::new(col("status")).string().not_null())
                    .col(ColumnDef::new(col("description")).string().not_null())
                    .col(ColumnDef::new(col("at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("tracking_events_shipment")
                    .table(col("tracking_events"))
                    .col(col("shipment_id"))
                    .col(col("id"))
                    .to_owned(),
            )
            .await?;
        create_outbox(manager).await?;
        create_inbox(manager).await
    }
}
