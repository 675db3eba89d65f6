//! The reporting context's schema: the events received, the read model built from them, the
//! outbox and the inbox.

use sea_orm_migration::prelude::*;

use crate::common::{ForgetPublishedOutbox, PendingOutboxIndex, col, create_inbox, create_outbox};

/// Runs the reporting migrations in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Reporting),
            Box::new(PendingOutboxIndex),
            Box::new(ForgetPublishedOutbox),
        ]
    }
}

/// Events, read model, outbox and inbox.
struct M0001Reporting;

impl MigrationName for M0001Reporting {
    fn name(&self) -> &str {
        "m0001_reporting"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Reporting {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(col("report_events"))
                    .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("event_type")).string().not_null())
                    .col(ColumnDef::new(col("version")).integer().not_null())
                    .col(ColumnDef::new(col("occurred_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(col("payload")).json_binary().not_null())
                    .col(ColumnDef::new(col("received_seq")).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("report_events_seq")
                    .table(col("report_events"))
                    .col(col("received_seq"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(col("report_orders"))
                    .col(ColumnDef::new(col("order_id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("number")).string().not_null())
                    .col(ColumnDef::new(col("day")).string().not_null())
                    .col(ColumnDef::new(col("status")).string().not_null())
                    .col(ColumnDef::new(col("status_rank")).integer().not_null())
                    .col(ColumnDef::new(col("confirmed")).boolean().not_null())
                    .col(ColumnDef::new(col("currency")).string().not_null())
                    .col(ColumnDef::new(col("subtotal_minor")).big_integer().not_null())
                    .col(ColumnDef::new(col("discount_minor")).big_integer().not_null())
                    .col(ColumnDef::new(col("total_minor")).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("report_orders_day")
                    .table(col("report_orders"))
                    .col(col("day"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(col("report_lines"))
                    .col(ColumnDef::new(col("order_id")).uuid().not_null())
                    .col(ColumnDef::new(col("product_id")).uuid().not_null())
                    .col(ColumnDef::new(col("day")).string().not_null())
                    .col(ColumnDef::new(col("name")).string().not_null())
                    .col(ColumnDef::new(col("category")).string().not_null())
                    .col(ColumnDef::new(col("quantity")).big_integer().not_null())
                    .col(ColumnDef::new(col("line_total_minor")).big_integer().not_null())
                    .primary_key(Index::create().col(col("order_id")).col(col("product_id")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("report_lines_day")
                    .table(col("report_lines"))
                    .col(col("day"))
                    .to_owned(),
            )
            .await?;
        create_outbox(manager).await?;
        create_inbox(manager).await
    }
}
