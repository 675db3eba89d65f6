//! The rewards context's schema: accounts, the points ledger, the outbox and the inbox.

use sea_orm_migration::prelude::*;

use crate::common::{ForgetPublishedOutbox, PendingOutboxIndex, col, create_inbox, create_outbox};

/// Runs the rewards migrations in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Rewards), Box::new(PendingOutboxIndex), Box::new(ForgetPublishedOutbox)]
    }
}

/// Accounts, ledger, outbox and inbox.
struct M0001Rewards;

impl MigrationName for M0001Rewards {
    fn name(&self) -> &str {
        "m0001_rewards"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Rewards {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(col("reward_accounts"))
                    .col(ColumnDef::new(col("customer_id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("balance")).big_integer().not_null())
                    .col(ColumnDef::new(col("pending")).big_integer().not_null())
                    .col(ColumnDef::new(col("updated_at")).timestamp_with_time_zone().not_null())
                    // The ledger never goes negative, whatever runs concurrently.
                    .check(Expr::col(col("balance")).gte(0))
                    .check(Expr::col(col("pending")).gte(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(col("reward_entries"))
                    .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("customer_id")).uuid().not_null())
                    .col(ColumnDef::new(col("order_id")).uuid().null())
                    .col(ColumnDef::new(col("kind")).string().not_null())
                    .col(ColumnDef::new(col("points")).big_integer().not_null())
                    .col(ColumnDef::new(col("remaining")).big_integer().not_null())
                    .col(ColumnDef::new(col("expires_at")).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(col("status")).string().null())
                    .col(ColumnDef::new(col("created_at")).timestamp_with_time_zone().not_null())
                    .check(Expr::col(col("remaining")).gte(0))
                    .to_owned(),
            )
            .await?;
        // One entry of each kind per order: an event handled twice moves no points twice.
        manager
            .create_index(
                Index::create()
                    .name("reward_entries_order_kind")
                    .table(col("reward_entries"))
                    .col(col("order_id"))
                    .col(col("kind"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("reward_entries_customer")
                    .table(col("reward_entries"))
                    .col(col("customer_id"))
                    .col(col("id"))
                    .to_owned(),
            )
            .await?;
        // Spendable points not yet spent, by expiry: the expiry sweep and spending read these.
        manager
            .create_index(
                Index::create()
                    .name("reward_entries_unspent")
                    .table(col("reward_entries"))
                    .col(col("expires_at"))
                    .and_where(Expr::col(col("remaining")).gt(0))
                    .to_owned(),
            )
            .await?;
        create_outbox(manager).await?;
        create_inbox(manager).await
    }
}
