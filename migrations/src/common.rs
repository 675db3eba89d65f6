//! Tables every context has: the transactional outbox, and (for contexts that consume
//! events) the inbox of handled events.

use sea_orm_migration::prelude::*;

/// Creates the `outbox` table and its index on pending rows.
pub async fn create_outbox(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Alias::new("outbox"))
                .if_not_exists()
                .col(ColumnDef::new(Alias::new("id")).uuid().not_null().primary_key())
                .col(ColumnDef::new(Alias::new("event_type")).string().not_null())
                .col(ColumnDef::new(Alias::new("version")).integer().not_null())
                .col(
                    ColumnDef::new(Alias::new("occurred_at")).timestamp_with_time_zone().not_null(),
                )
                .col(ColumnDef::new(Alias::new("aggregate_id")).string().not_null())
                .col(ColumnDef::new(Alias::new("correlation_id")).uuid().not_null())
                .col(ColumnDef::new(Alias::new("causation_id")).uuid().null())
                .col(ColumnDef::new(Alias::new("payload")).json_binary().not_null())
                .col(ColumnDef::new(Alias::new("published_at")).timestamp_with_time_zone().null())
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("outbox_pending")
                .table(Alias::new("outbox"))
                .col(Alias::new("published_at"))
                .col(Alias::new("id"))
                .if_not_exists()
                .to_owned(),
        )
        .await
}

/// Replaces the first outbox index (on `published_at, id`) by a partial index on `id` of the
/// pending rows only. The relay asks for "pending, oldest first" on every wake-up: the old
/// index kept an entry for every row ever published (each update adds one), so without fresh
/// planner statistics that question read the whole history, and it grew with every event.
/// The partial index holds only what is still to publish, in the order the relay wants it.
pub struct PendingOutboxIndex;

impl MigrationName for PendingOutboxIndex {
    fn name(&self) -> &str {
        "m_common_0001_outbox_pending_partial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for PendingOutboxIndex {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("outbox_pending")
                    .table(Alias::new("outbox"))
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("outbox_pending_ids")
                    .table(Alias::new("outbox"))
                    .col(Alias::new("id"))
                    .and_where(Expr::col(Alias::new("published_at")).is_null())
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }
}

/// The relay deletes what it published instead of marking it (`published_at` stays, always
/// `NULL`): the rows earlier versions marked are deleted, and the partial index of pending rows
/// goes, since every row left is pending and the primary key gives them in order. An update
/// that set `published_at` wrote each row again with new index entries; a deletion touches
/// no index.
pub struct ForgetPublishedOutbox;

impl MigrationName for ForgetPublishedOutbox {
    fn name(&self) -> &str {
        "m_common_0002_outbox_forget_published"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ForgetPublishedOutbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let published = Query::delete()
            .from_table(Alias::new("outbox"))
            .and_where(Expr::col(Alias::new("published_at")).is_not_null())
            .to_owned();
        manager.exec_stmt(published).await?;
        manager
            .drop_index(
                Index::drop()
                    .name("outbox_pending_ids")
                    .table(Alias::new("outbox"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

/// Adds the nullable `email` column to `table`: where a guest order's mails go. Orders take
/// it at checkout, and shipments carry it on, so that notifications can write to guests.
pub struct GuestEmail {
    /// The migration's name.
    pub name: &'static str,
    /// The table that gets the column.
    pub table: &'static str,
}

impl MigrationName for GuestEmail {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for GuestEmail {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(col(self.table))
                    .add_column(ColumnDef::new(col("email")).string().null())
                    .to_owned(),
            )
            .await
    }
}

/// Creates the `inbox` table: one row per (consumer group, event) handled.
pub async fn create_inbox(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Alias::new("inbox"))
                .if_not_exists()
                .col(ColumnDef::new(Alias::new("consumer")).string().not_null())
                .col(ColumnDef::new(Alias::new("event_id")).uuid().not_null())
                .col(ColumnDef::new(Alias::new("event_type")).string().not_null())
                .col(ColumnDef::new(Alias::new("handled_at")).timestamp_with_time_zone().not_null())
                .primary_key(
                    Index::create().col(Alias::new("consumer")).col(Alias::new("event_id")),
                )
                .to_owned(),
        )
        .await
}

/// Shorthand for a column name.
pub fn col(name: &'static str) -> Alias {
    Alias::new(name)
}
