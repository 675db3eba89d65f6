//! The identity context's schema: customers and refresh tokens.

use sea_orm_migration::prelude::*;

use crate::common::{ForgetPublishedOutbox, PendingOutboxIndex, col, create_outbox};

/// Runs the identity migrations in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Identity), Box::new(PendingOutboxIndex), Box::new(ForgetPublishedOutbox)]
    }
}

/// Customers, refresh tokens and the outbox.
struct M0001Identity;

impl MigrationName for M0001Identity {
    fn name(&self) -> &str {
        "m0001_identity"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Identity {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(col("customers"))
                    .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("email")).string().not_null().unique_key())
                    .col(ColumnDef::new(col("name")).string().not_null())
                    .col(ColumnDef::new(col("password_hash")).string().not_null())
                    .col(ColumnDef::new(col("roles")).string().not_null())
                    .col(ColumnDef::new(col("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(col("updated_at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(col("refresh_tokens"))
                    .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("customer_id")).uuid().not_null())
                    .col(ColumnDef::new(col("family_id")).uuid().not_null())
                    .col(ColumnDef::new(col("token_hash")).string().not_null().unique_key())
                    .col(ColumnDef::new(col("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(col("expires_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(col("used_at")).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(col("revoked_at")).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(col("refresh_tokens"), col("customer_id"))
                            .to(col("customers"), col("id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("refresh_tokens_family")
                    .table(col("refresh_tokens"))
                    .col(col("family_id"))
                    .to_owned(),
            )
            .await?;
        create_outbox(manager).await
    }
}
