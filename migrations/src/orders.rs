//! The orders context's schema: orders, lines, timelines, the outbox and the inbox.

use sea_orm_migration::prelude::*;

use crate::common::{
    ForgetPublishedOutbox, GuestEmail, PendingOutboxIndex, col, create_inbox, create_outbox,
};

/// Runs the orders migrations in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Orders),
            Box::new(PendingOutboxIndex),
            Box::new(M0002PendingByAge),
            Box::new(M0003LineCategory),
            Box::new(M0004Discount),
            Box::new(M0005TimelineByOrder),
            Box::new(ForgetPublishedOutbox),
            Box::new(GuestEmail { name: "m0006_orders_guest_email", table: "orders" }),
        ]
    }
}

/// Orders, lines, timelines, outbox and inbox.
struct M0001Orders;

impl MigrationName for M0001Orders {
    fn name(&self) -> &str {
        "m0001_orders"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Orders {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(col("orders"))
                    .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("number")).string().not_null().unique_key())
                    .col(ColumnDef::new(col("customer_id")).uuid().null())
                    .col(ColumnDef::new(col("cart_id")).uuid().not_null())
                    .col(ColumnDef::new(col("status")).string().not_null())
                    .col(ColumnDef::new(col("cancel_reason")).string().null())
                    .col(ColumnDef::new(col("currency")).string().not_null())
                    .col(ColumnDef::new(col("subtotal_minor")).big_integer().not_null())
                    .col(ColumnDef::new(col("total_minor")).big_integer().not_null())
                    .col(ColumnDef::new(col("shipping_address")).json_binary().not_null())
                    .col(ColumnDef::new(col("payment_method_id")).uuid().not_null())
                    .col(ColumnDef::new(col("idempotency_key")).string().not_null())
                    .col(ColumnDef::new(col("request_hash")).string().not_null())
                    .col(
                        ColumnDef::new(col("payment_requested_at"))
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(col("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(col("updated_at")).timestamp_with_time_zone().not_null())
                    .check(Expr::col(col("total_minor")).gte(0))
                    .check(Expr::col(col("subtotal_minor")).gte(0))
                    .to_owned(),
            )
            .await?;
        // One order per idempotency key and cart (a guest's key is scoped by its cart).
        manager
            .create_index(
                Index::create()
                    .name("orders_idempotency")
                    .table(col("orders"))
                    .col(col("cart_id"))
                    .col(col("idempotency_key"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("orders_customer_newest")
                    .table(col("orders"))
                    .col(col("customer_id"))
                    .col(col("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("orders_status")
                    .table(col("orders"))
                    .col(col("status"))
                    .col(col("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(col("order_lines"))
                    .col(ColumnDef::new(col("order_id")).uuid().not_null())
                    .col(ColumnDef::new(col("product_id")).uuid().not_null())
                    .col(ColumnDef::new(col("name")).string().not_null())
                    .col(ColumnDef::new(col("unit_price_minor")).big_integer().not_null())
                    .col(ColumnDef::new(col("quantity")).integer().not_null())
                    .col(ColumnDef::new(col("line_total_minor")).big_integer().not_null())
                    .col(ColumnDef::new(col("position")).integer().not_null())
                    .primary_key(Index::create().col(col("order_id")).col(col("product_id")))
                    .check(Expr::col(col("quantity")).gt(0))
                    .check(Expr::col(col("unit_price_minor")).gte(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(col("order_timeline"))
                    .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("order_id")).uuid().not_null())
                    .col(ColumnDef::new(col("status")).string().not_null())
                    .col(ColumnDef::new(col("reason")).string().null())
                    .col(ColumnDef::new(col("at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("order_timeline_order")
                    .table(col("order_timeline"))
                    .col(col("order_id"))
                    .to_owned(),
            )
            .await?;
        create_outbox(manager).await?;
        create_inbox(manager).await
    }
}

/// The stuck-checkout sweep's index becomes a partial one (`updated_at` of pending orders).
/// The first index led with `status`: every status change rewrote an entry in it, and a
/// planner without statistics could pick it to find one order by id and status.
struct M0002PendingByAge;

impl MigrationName for M0002PendingByAge {
    fn name(&self) -> &str {
        "m0002_orders_pending_partial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002PendingByAge {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop().name("orders_status").table(col("orders")).if_exists().to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("orders_pending_by_age")
                    .table(col("orders"))
                    .col(col("updated_at"))
                    .and_where(Expr::col(col("status")).eq("PENDING"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }
}

/// Each order line keeps its product's category with the price snapshot, so reports can group
/// sales by category as it was when the order was placed. Lines stored before have none.
struct M0003LineCategory;

impl MigrationName for M0003LineCategory {
    fn name(&self) -> &str {
        "m0003_order_lines_category"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003LineCategory {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(col("order_lines"))
                    .add_column(ColumnDef::new(col("category")).string().null())
                    .to_owned(),
            )
            .await
    }
}

/// An order records the points redeemed at checkout and the discount they bought.
struct M0004Discount;

impl MigrationName for M0004Discount {
    fn name(&self) -> &str {
        "m0004_orders_discount"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0004Discount {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["discount_minor", "points_redeemed"] {
            manager
                .alter_table(
                    Table::alter()
                        .table(col("orders"))
                        .add_column(ColumnDef::new(col(column)).big_integer().not_null().default(0))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// An order's timeline is read newest or oldest first (`WHERE order_id = ? ORDER BY id`). With
/// an index on `order_id` alone, PostgreSQL may answer "newest first, one row" by walking the
/// primary key backwards from the newest entry of any order until it meets one of this order:
/// measured at 40–50 ms per read once an order's last step lay ten thousand entries back.
/// Indexed by (order, id), each read is one short range.
struct M0005TimelineByOrder;

impl MigrationName for M0005TimelineByOrder {
    fn name(&self) -> &str {
        "m0005_order_timeline_by_order_and_id"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0005TimelineByOrder {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("order_timeline_order_id")
                    .table(col("order_timeline"))
                    .col(col("order_id"))
                    .col(col("id"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // The new index serves every lookup the old one did.
        manager
            .drop_index(
                Index::drop()
                    .name("order_timeline_order")
                    .table(col("order_timeline"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
