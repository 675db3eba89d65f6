//! The transactional outbox: [`append`] writes an event in the caller's transaction, and the
//! [`OutboxRelay`] publishes committed rows to the bus in order, marking each one published.
//!
//! Every context has its own `outbox` table (created by its migrator) in its own database.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder, QuerySelect};
use tokio::sync::Notify;

use super::EventEnvelope;
use super::bus::EventBus;

/// The `outbox` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One recorded event; `published_at` is set once the bus accepted it.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        /// The event id (UUID v7, so primary-key order is creation order).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Dotted event type.
        pub event_type: String,
        /// Payload schema version.
        pub version: i32,
        /// When the change happened.
        pub occurred_at: DateTimeUtc,
        /// The aggregate that changed.
        pub aggregate_id: String,
        /// Correlation id.
        pub correlation_id: Uuid,
        /// Causation id.
        pub causation_id: Option<Uuid>,
        /// JSON payload.
        pub payload: Json,
        /// When the relay published it; `NULL` while pending.
        pub published_at: Option<DateTimeUtc>,
    }

    /// No relations: the outbox stands alone.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

tokio::task_local! {
    /// Events appended inside [`deferring`], waiting to be written together.
    static DEFERRED: std::cell::RefCell<Vec<EventEnvelope>>;
}

fn row(event: &EventEnvelope) -> entity::ActiveModel {
    entity::ActiveModel {
        id: Set(event.id),
        event_type: Set(event.event_type.clone()),
        version: Set(event.version),
        occurred_at: Set(event.occurred_at),
        aggregate_id: Set(event.aggregate_id.clone()),
        correlation_id: Set(event.correlation_id),
        causation_id: Set(event.causation_id),
        payload: Set(event.payload.clone()),
        published_at: Set(None),
    }
}

/// Records `event` in the outbox, inside whatever transaction `conn` is (or, inside
/// [`deferring`], hands it to the caller of `deferring` to write with the others).
pub async fn append<C: ConnectionTrait>(conn: &C, event: &EventEnvelope) -> Result<(), DbErr> {
    let deferred = DEFERRED.try_with(|events| events.borrow_mut().push(event.clone()));
    if deferred.is_ok() {
        return Ok(());
    }
    entity::Entity::insert(row(event)).exec_without_returning(conn).await?;
    Ok(())
}

/// Records `events` in the outbox in one statement, inside whatever transaction `conn` is.
pub async fn append_all<C: ConnectionTrait>(
    conn: &C,
    events: &[EventEnvelope],
) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    entity::Entity::insert_many(events.iter().map(row)).exec_without_returning(conn).await?;
    Ok(())
}

/// Runs `work` with every [`append`] it makes (in this task) held back, and returns them in
/// order beside its output: a consumer handling several events in one transaction writes all
/// their outgoing events in one statement ([`append_all`]) before it commits. Work that
/// fails drops what it appended, as its transaction would have.
pub async fn deferring<T>(work: impl Future<Output = T>) -> (T, Vec<EventEnvelope>) {
    DEFERRED
        .scope(std::cell::RefCell::new(Vec::new()), async move {
            let output = work.await;
            (output, DEFERRED.with(|events| events.take()))
        })
        .await
}

impl From<entity::Model> for EventEnvelope {
    fn from(row: entity::Model) -> Self {
        Self {
            id: row.id,
            event_type: row.event_type,
            version: row.version,
            occurred_at: row.occurred_at,
            aggregate_id: row.aggregate_id,
            correlation_id: row.correlation_id,
            causation_id: row.causation_id,
            payload: row.payload,
        }
    }
}

/// Rows the relay reads at a time.
const BATCH: u64 = 100;

/// Where a context's own notices go instead of the bus: events recorded in the outbox so
/// that they leave only once their transaction committed, but meant for live readers (such
/// as a status feed), not for other contexts' consumer groups.
pub trait LocalFeed: Send + Sync {
    /// The event types that go here.
    fn types(&self) -> &[&'static str];
    /// Hands committed events over, in outbox order.
    fn deliver<'a>(
        &'a self,
        events: &'a [EventEnvelope],
    ) -> futures::future::BoxFuture<'a, anyhow::Result<()>>;
}

/// Moves committed outbox rows to the bus (or, for a [`LocalFeed`]'s types, to the feed).
///
/// Services call [`OutboxRelay::wake`] after committing so events go out at once; a periodic
/// sweep catches anything left behind (a crash between commit and publish, a bus outage).
#[derive(Clone)]
pub struct OutboxRelay {
    db: DatabaseConnection,
    bus: Arc<dyn EventBus>,
    wake: Arc<Notify>,
    feed: Option<Arc<dyn LocalFeed>>,
}

impl OutboxRelay {
    /// A relay from `db`'s outbox to `bus`.
    pub fn new(db: DatabaseConnection, bus: Arc<dyn EventBus>) -> Self {
        Self { db, bus, wake: Arc::new(Notify::new()), feed: None }
    }

    /// The same relay, handing `feed`'s event types to it instead of the bus.
    pub fn with_feed(mut self, feed: Arc<dyn LocalFeed>) -> Self {
        self.feed = Some(feed);
        self
    }

    /// Asks the relay to publish now (call after a commit that appended events).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Publishes pending rows until none are left; returns how many were published.
    #[tracing::instrument(skip_all, name = "outbox_drain")]
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let batch = entity::Entity::find()
                .filter(entity::Column::PublishedAt.is_null())
                .order_by_asc(entity::Column::Id)
                .limit(BATCH)
                .all(&self.db)
                .await?;
            if batch.is_empty() {
                return Ok(total);
            }
            // A short batch was the last one: no need to ask again.
            let last = (batch.len() as u64) < BATCH;
            // Published in order; marked in one statement per batch (one commit, not one
            // per event), including after a failure for what did go out.
            let (local, events): (Vec<EventEnvelope>, Vec<EventEnvelope>) =
                batch.into_iter().map(EventEnvelope::from).partition(|e| {
                    self.feed.as_ref().is_some_and(|f| f.types().contains(&e.event_type.as_str()))
                });
            let mut published: Vec<Uuid> = Vec::with_capacity(local.len() + events.len());
            let mut failure = None;
            if let (Some(feed), false) = (&self.feed, local.is_empty()) {
                match feed.deliver(&local).await {
                    Ok(()) => published.extend(local.iter().map(|e| e.id)),
                    Err(error) => failure = Some(error),
                }
            }
            // A batch of feed events only has nothing for the bus.
            let (sent, bus_failure) =
                if events.is_empty() { (0, None) } else { self.bus.publish_all(&events).await };
            published.extend(events.iter().take(sent).map(|e| e.id));
            let failure = failure.or(bus_failure);
            if !published.is_empty() {
                entity::Entity::update_many()
                    .col_expr(entity::Column::PublishedAt, Expr::value(Utc::now()))
                    .filter(entity::Column::Id.is_in(published.iter().copied()))
                    .exec(&self.db)
                    .await?;
                total += published.len();
            }
            if let Some(error) = failure {
                return Err(error);
            }
            if last {
                return Ok(total);
            }
        }
    }

    /// Runs until `shutdown` resolves, publishing on every wake-up and every `sweep`.
    pub async fn run(self, sweep: Duration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(err) = self.drain().await {
                tracing::error!(error = ?err, "outbox relay failed; will retry");
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sweep) => {}
            }
        }
    }
}
