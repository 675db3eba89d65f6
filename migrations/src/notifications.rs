//! The notifications context's schema: mails, the outbox and the inbox.

use sea_orm_migration::prelude::*;

use crate::common::{ForgetPublishedOutbox, PendingOutboxIndex, col, create_inbox, create_outbox};

/// Runs the notifications migrations in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Notifications),
            Box::new(PendingOutboxIndex),
            Box::new(ForgetPublishedOutbox),
            Box::new(M0002GuestMails),
        ]
    }
}

/// Mails, outbox and inbox.
struct M0001Notifications;

impl MigrationName for M0001Notifications {
    fn name(&self) -> &str {
        "m0001_notifications"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Notifications {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(mails_table(
                "mails",
                ColumnDef::new(col("customer_id")).uuid().not_null().to_owned(),
            ))
            .await?;
        create_mail_indexes(manager).await?;
        create_outbox(manager).await?;
        create_inbox(manager).await
    }
}

/// The `mails` table, named `name`, with `customer_id` as given.
fn mails_table(name: &'static str, customer_id: ColumnDef) -> TableCreateStatement {
    Table::create()
        .table(col(name))
        .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
        .col(ColumnDef::new(col("kind")).string().not_null())
        .col(ColumnDef::new(col("order_id")).uuid().not_null())
        .col(customer_id)
        .col(ColumnDef::new(col("to_address")).string().null())
        .col(ColumnDef::new(col("subject")).string().not_null())
        .col(ColumnDef::new(col("text_body")).text().not_null())
        .col(ColumnDef::new(col("html_body")).text().not_null())
        .col(ColumnDef::new(col("status")).string().not_null())
        .col(ColumnDef::new(col("attempts")).integer().not_null())
        .col(ColumnDef::new(col("next_attempt_at")).timestamp_with_time_zone().not_null())
        .col(ColumnDef::new(col("last_error")).string().null())
        .col(ColumnDef::new(col("sent_at")).timestamp_with_time_zone().null())
        .col(ColumnDef::new(col("created_at")).timestamp_with_time_zone().not_null())
        .to_owned()
}

/// The indexes of `mails`.
async fn create_mail_indexes(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    // One mail of each kind per order, whatever arrives twice.
    manager
        .create_index(
            Index::create()
                .name("mails_order_kind")
                .table(col("mails"))
                .col(col("order_id"))
                .col(col("kind"))
                .unique()
                .to_owned(),
        )
        .await?;
    // The sender asks "which mails are due?": only pending ones are in this index.
    manager
        .create_index(
            Index::create()
                .name("mails_due")
                .table(col("mails"))
                .col(col("next_attempt_at"))
                .and_where(Expr::col(col("status")).eq("PENDING"))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("mails_customer")
                .table(col("mails"))
                .col(col("customer_id"))
                .col(col("id"))
                .to_owned(),
        )
        .await
}

/// A guest's order has no customer: its mails are addressed to the e-mail given at checkout
/// (`to_address`), so `customer_id` may be empty. SQLite cannot drop a column's `NOT NULL`:
/// there the table is rebuilt, rows and indexes included.
struct M0002GuestMails;

impl MigrationName for M0002GuestMails {
    fn name(&self) -> &str {
        "m0002_mails_for_guests"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002GuestMails {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let nullable = ColumnDef::new(col("customer_id")).uuid().null().to_owned();
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Sqlite {
            return manager
                .alter_table(Table::alter().table(col("mails")).modify_column(nullable).to_owned())
                .await;
        }
        manager.create_table(mails_table("mails_rebuilt", nullable)).await?;
        // Both tables come from `mails_table`: their columns are in the same order.
        manager
            .get_connection()
            .execute_unprepared("INSERT INTO mails_rebuilt SELECT * FROM mails")
            .await?;
        manager.drop_table(Table::drop().table(col("mails")).to_owned()).await?;
        manager
            .rename_table(Table::rename().table(col("mails_rebuilt"), col("mails")).to_owned())
            .await?;
        create_mail_indexes(manager).await
    }
}
