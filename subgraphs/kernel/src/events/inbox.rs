//! The inbox: which events a consumer group has already handled, so that a redelivered event
//! changes nothing the second time. The inbox row is written in the same transaction as the
//! handler's changes: both commit, or neither does.

use futures::future::BoxFuture;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseTransaction};

use super::EventEnvelope;
use super::unit::Unit;

/// The `inbox` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One handled event, per consumer group.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "inbox")]
    pub struct Model {
        /// The consumer group that handled it.
        #[sea_orm(primary_key, auto_increment = false)]
        pub consumer: String,
        /// The event's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_id: Uuid,
        /// The event's type (for operators reading the table).
        pub event_type: String,
        /// When it was handled.
        pub handled_at: DateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What [`handle_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The handler ran and its transaction committed.
    Now,
    /// The group had handled this event before: nothing ran.
    Before,
}

/// A handler's work inside the inbox transaction.
pub type Work<'t> = BoxFuture<'t, anyhow::Result<()>>;

/// Runs `work` for `event` in one transaction with the inbox row of `consumer`, unless that
/// row exists (the event was handled before). A failing `work` rolls everything back.
pub async fn handle_once<F>(
    db: &DatabaseConnection,
    consumer: &str,
    event: &EventEnvelope,
    work: F,
) -> anyhow::Result<Handled>
where
    F: for<'t> FnOnce(&'t Unit) -> Work<'t>,
{
    let unit = Unit::new(db.clone());
    // Claiming the row first means a concurrent redelivery waits on it (PostgreSQL) or on the
    // write lock (SQLite), then finds it taken.
    let claimed = claim(unit.transaction().await?, consumer, event).await?;
    if !claimed {
        if let Some(txn) = unit.into_begun() {
            txn.rollback().await?;
        }
        return Ok(Handled::Before);
    }
    work(&unit).await?;
    if let Some(txn) = unit.into_begun() {
        txn.commit().await?;
    }
    Ok(Handled::Now)
}

/// Writes `consumer`'s inbox row for `event` inside `txn`; false when the row was there
/// already (the event was handled before, and the caller must not apply it again).
pub async fn claim(
    txn: &DatabaseTransaction,
    consumer: &str,
    event: &EventEnvelope,
) -> Result<bool, DbErr> {
    Ok(claim_all(txn, consumer, &[event]).await?.contains(&event.id))
}

/// The inbox rows a consumer's transaction writes for the events it handled, as the last
/// of its writes: a plain insert, so that an event handled before (its row is there, or a
/// concurrent transaction writing it commits first) fails the statement and the whole
/// transaction rolls back, its changes with it. Written together with the outbox rows in
/// one statement where the database allows (see [`super::outbox::write_all`]).
pub(crate) struct Claim<'a> {
    /// The consumer group.
    pub consumer: &'a str,
    /// The events handled (each once).
    pub events: &'a [&'a EventEnvelope],
}

impl Claim<'_> {
    /// The rows, handled now.
    fn rows(&self) -> impl Iterator<Item = entity::ActiveModel> + '_ {
        let now = chrono::Utc::now();
        self.events.iter().map(move |event| entity::ActiveModel {
            consumer: Set(self.consumer.to_string()),
            event_id: Set(event.id),
            event_type: Set(event.event_type.clone()),
            handled_at: Set(now),
        })
    }

    /// The insert of the rows (no conflict clause: a row already there is an error).
    pub(crate) fn insert(&self) -> sea_orm::sea_query::InsertStatement {
        use sea_orm::QueryTrait;
        entity::Entity::insert_many(self.rows()).into_query()
    }
}

/// Whether `consumer` has handled the event `id` (its row is committed).
pub async fn handled_before<C: ConnectionTrait>(
    db: &C,
    consumer: &str,
    id: Uuid,
) -> Result<bool, DbErr> {
    Ok(entity::Entity::find_by_id((consumer.to_string(), id)).one(db).await?.is_some())
}

/// Writes `consumer`'s inbox rows for all of `events` inside `txn`, in one statement; the
/// ids of the events not handled before (each id once, however often it was given).
pub async fn claim_all(
    txn: &DatabaseTransaction,
    consumer: &str,
    events: &[&EventEnvelope],
) -> Result<std::collections::HashSet<Uuid>, DbErr> {
    let inserted = entity::Entity::insert_many(Claim { consumer, events }.rows())
        .on_conflict(
            OnConflict::columns([entity::Column::Consumer, entity::Column::EventId])
                .do_nothing()
                .to_owned(),
        )
        .exec_with_returning_keys(txn)
        .await;
    match inserted {
        Ok(keys) => Ok(keys.into_iter().map(|(_, id)| id).collect()),
        // Every one of them was handled before.
        Err(DbErr::RecordNotInserted) => Ok(Default::default()),
        Err(error) => Err(error),
    }
}
