//! The payments context's schema: payment methods, the simulated processor's tokens,
//! payments, the outbox and the inbox.

use sea_orm_migration::prelude::*;

use crate::common::{ForgetPublishedOutbox, PendingOutboxIndex, col, create_inbox, create_outbox};

/// Runs the payments migrations in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Payments), Box::new(PendingOutboxIndex), Box::new(ForgetPublishedOutbox)]
    }
}

/// Payment methods, processor tokens, payments, outbox and inbox.
struct M0001Payments;

impl MigrationName for M0001Payments {
    fn name(&self) -> &str {
        "m0001_payments"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Payments {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(col("payment_methods"))
                    .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("customer_id")).uuid().null())
                    .col(ColumnDef::new(col("processor_token")).string().not_null())
                    .col(ColumnDef::new(col("brand")).string().not_null())
                    .col(ColumnDef::new(col("last4")).string().not_null())
                    .col(ColumnDef::new(col("exp_month")).integer().not_null())
                    .col(ColumnDef::new(col("exp_year")).integer().not_null())
                    .col(ColumnDef::new(col("created_at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(col("processor_tokens"))
                    .col(ColumnDef::new(col("token")).string().not_null().primary_key())
                    .col(ColumnDef::new(col("behaviour")).string().not_null())
                    .col(ColumnDef::new(col("created_at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(col("payments"))
                    .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("order_id")).uuid().not_null().unique_key())
                    .col(ColumnDef::new(col("customer_id")).uuid().null())
                    .col(ColumnDef::new(col("payment_method_id")).uuid().not_null())
                    .col(ColumnDef::new(col("amount_minor")).big_integer().not_null())
                    .col(ColumnDef::new(col("currency")).string().not_null())
                    .col(ColumnDef::new(col("status")).string().not_null())
                    .col(ColumnDef::new(col("decline_reason")).string().null())
                    .col(ColumnDef::new(col("authorization_key")).string().not_null().unique_key())
                    .col(ColumnDef::new(col("processor_reference")).string().null())
                    .col(ColumnDef::new(col("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(col("updated_at")).timestamp_with_time_zone().not_null())
                    .check(Expr::col(col("amount_minor")).gte(0))
                    .to_owned(),
            )
            .await?;
        create_outbox(manager).await?;
        create_inbox(manager).await
    }
}
