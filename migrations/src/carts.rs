//! The carts context's schema: carts and their lines, the outbox and the inbox.

use sea_orm_migration::prelude::*;

use crate::common::{ForgetPublishedOutbox, PendingOutboxIndex, col, create_inbox, create_outbox};

/// Runs the carts migrations in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Carts),
            Box::new(PendingOutboxIndex),
            Box::new(ForgetPublishedOutbox),
            Box::new(M0002LineCount),
        ]
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

/// Each cart counts its lines (`line_count`), so that adding a line can check the cart's
/// limit on the cart row itself: on PostgreSQL an addition is then one statement, which a
/// concurrent addition to the same cart waits on and sees (the update re-reads the row it
/// waited for), where a count of the lines would see only what was committed when the
/// statement began. There a check keeps the count within the limit: a statement that would
/// pass it fails as a whole, and writes nothing.
struct M0002LineCount;

impl MigrationName for M0002LineCount {
    fn name(&self) -> &str {
        "m0002_cart_line_count"
    }
}

/// The most lines a cart holds (`carts::MAX_LINES`; the carts tests on PostgreSQL would see
/// them disagree).
const MAX_LINES: i32 = 50;

#[async_trait::async_trait]
impl MigrationTrait for M0002LineCount {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(col("carts"))
                    .add_column(ColumnDef::new(col("line_count")).integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE carts SET line_count = \
                (SELECT COUNT(*) FROM cart_lines WHERE cart_lines.cart_id = carts.id)",
        )
        .await?;
        // SQLite cannot add a check to a table; there the carts code checks the count in the
        // transaction that writes the line (its one connection serialises writers).
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            db.execute_unprepared(&format!(
                "ALTER TABLE carts ADD CONSTRAINT carts_line_limit \
                    CHECK (line_count BETWEEN 0 AND {MAX_LINES})"
            ))
            .await?;
        }
        Ok(())
    }
}
