//! The carts context's schema: carts and their lines, the outbox and the inbox.

use sea_orm_migration::prelude::*;

use crate::common::{ForgetPublishedOutbox, PendingOutboxIndex, col, create_inbox, create_outbox};

/// Runs the carts migrations in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Carts), Box::new(PendingOutboxIndex), Box::new(ForgetPublishedOutbox)]
    }
}

/// Carts, lines, the outbox and the inbox.
struct M0001Carts;

impl MigrationName for M0001Carts {
    fn name(&self) -> &str {
        "m0001_carts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Carts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(col("carts"))
                    .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
                    // Unique: a customer has one cart (guests' carts have none, and NULLs differ).
                    .col(ColumnDef::new(col("customer_id")).uuid().null().unique_key())
                    .col(ColumnDef::new(col("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(col("updated_at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("carts_idle")
                    .table(col("carts"))
                    .col(col("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(col("cart_lines"))
                    .col(ColumnDef::new(col("cart_id")).uuid().not_null())
                    .col(ColumnDef::new(col("product_id")).uuid().not_null())
                    .col(ColumnDef::new(col("quantity")).integer().not_null())
                    .col(ColumnDef::new(col("added_at")).timestamp_with_time_zone().not_null())
                    .primary_key(Index::create().col(col("cart_id")).col(col("product_id")))
                    .foreign_key(
                        ForeignKey::create()
                            .from(col("cart_lines"), col("cart_id"))
                            .to(col("carts"), col("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .check(Expr::col(col("quantity")).gt(0))
                    .to_owned(),
            )
            .await?;
        create_outbox(manager).await?;
        create_inbox(manager).await
    }
}
