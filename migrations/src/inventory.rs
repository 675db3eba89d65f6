//! The inventory context's schema: stock, reservations, the outbox and the inbox.

use sea_orm_migration::prelude::*;

use crate::common::{ForgetPublishedOutbox, PendingOutboxIndex, col, create_inbox, create_outbox};

/// Runs the inventory migrations in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Inventory),
            Box::new(PendingOutboxIndex),
            Box::new(M0002HeldExpiry),
            Box::new(ForgetPublishedOutbox),
        ]
    }
}

/// Stock, reservations, outbox and inbox.
struct M0001Inventory;

impl MigrationName for M0001Inventory {
    fn name(&self) -> &str {
        "m0001_inventory"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Inventory {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(col("stock"))
                    .col(ColumnDef::new(col("product_id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("on_hand")).big_integer().not_null())
                    .col(ColumnDef::new(col("reserved")).big_integer().not_null())
                    .col(ColumnDef::new(col("updated_at")).timestamp_with_time_zone().not_null())
                    // The last line of defence: no update may oversell or over-release.
                    .check(Expr::col(col("reserved")).gte(0))
                    .check(Expr::col(col("on_hand")).gte(Expr::col(col("reserved"))))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(col("reservations"))
                    .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("order_id")).uuid().not_null())
                    .col(ColumnDef::new(col("product_id")).uuid().not_null())
                    .col(ColumnDef::new(col("quantity")).big_integer().not_null())
                    .col(ColumnDef::new(col("status")).string().not_null())
                    .col(ColumnDef::new(col("expires_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(col("release_reason")).string().null())
                    .col(ColumnDef::new(col("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(col("updated_at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("reservations_order_product")
                    .table(col("reservations"))
                    .col(col("order_id"))
                    .col(col("product_id"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("reservations_held_expiry")
                    .table(col("reservations"))
                    .col(col("status"))
                    .col(col("expires_at"))
                    .to_owned(),
            )
            .await?;
        create_outbox(manager).await?;
        create_inbox(manager).await
    }
}

/// The lapsed-hold sweep's index becomes a partial one (`expires_at` of held reservations).
/// The first index led with `status`, and a planner without statistics used it for "this
/// order's held reservations", reading every held reservation to find one order's.
struct M0002HeldExpiry;

impl MigrationName for M0002HeldExpiry {
    fn name(&self) -> &str {
        "m0002_reservations_held_expiry_partial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002HeldExpiry {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("reservations_held_expiry")
                    .table(col("reservations"))
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("reservations_held_by_expiry")
                    .table(col("reservations"))
                    .col(col("expires_at"))
                    .and_where(Expr::col(col("status")).eq("HELD"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }
}
