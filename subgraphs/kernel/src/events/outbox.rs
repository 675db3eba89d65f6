//! The transactional outbox: [`append`] writes an event in the caller's transaction, and the
//! [`OutboxRelay`] publishes committed events to the bus in order, then deletes their rows: the
//! outbox holds what is still to publish (a published event lives on in the bus and in the
//! consumers' inboxes, not here), and, with the in-process bus, what a group has yet to
//! settle ([`EventBus::still_owed`](super::bus::EventBus::still_owed)): held only in
//! memory, it is relayed again after a stop or a crash.
//!
//! Every context has its own `outbox` table (created by its migrator) in its own database.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::ExprTrait as _;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseTransaction, DbBackend, QueryOrder, QuerySelect,
    QueryTrait,
};
use tokio::sync::Notify;

use super::EventEnvelope;
use super::bus::EventBus;
use super::inbox::Claim;

/// The `outbox` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One recorded event, until the bus accepts it.
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
        /// Always `NULL`: earlier versions marked published rows here instead of deleting
        /// them (a migration deleted those).
        pub published_at: Option<DateTimeUtc>,
    }

    /// No relations: the outbox stands alone.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

tokio::task_local! {
    /// Events appended and writes put off inside [`deferring`], waiting to be written together.
    static DEFERRED: std::cell::RefCell<Deferred>;
    /// The aggregate the work running now is about, inside [`about`].
    static ABOUT: String;
}

/// Runs `work` as work about aggregate `key` alone: its statements read and write, in the
/// tables of guards put off by the same unit, only the rows of `key`. A guard it puts off is
/// about `key`, and its statements do not apply first the guards about other aggregates
/// (their rows are not the ones it reads), so a batch of several aggregates' events keeps
/// every guard for the commit's single statement instead of beginning a transaction to apply
/// the earlier ones. Outside such work, a statement naming a waiting guard's table applies it
/// first, whatever it is about.
pub async fn about<T>(key: impl Into<String>, work: impl Future<Output = T>) -> T {
    ABOUT.scope(key.into(), work).await
}

/// A write whose caller needs nothing back from it (no returned rows, no count): it can wait
/// for the commit and go to the database in the same statement as the outbox rows (see
/// [`write_later`]).
#[derive(Debug)]
pub enum Write {
    /// An `INSERT` (with or without `ON CONFLICT`).
    Insert(sea_orm::sea_query::InsertStatement),
    /// A `DELETE`.
    Delete(sea_orm::sea_query::DeleteStatement),
}

impl From<sea_orm::sea_query::InsertStatement> for Write {
    fn from(statement: sea_orm::sea_query::InsertStatement) -> Self {
        Self::Insert(statement)
    }
}

impl From<sea_orm::sea_query::DeleteStatement> for Write {
    fn from(statement: sea_orm::sea_query::DeleteStatement) -> Self {
        Self::Delete(statement)
    }
}

impl Write {
    /// Runs it on its own.
    async fn execute<C: ConnectionTrait>(&self, conn: &C) -> Result<(), DbErr> {
        match self {
            Self::Insert(statement) => conn.execute(statement).await,
            Self::Delete(statement) => conn.execute(statement).await,
        }
        .map(drop)
    }

    fn into_query(self) -> sea_orm::sea_query::SubQueryStatement {
        use sea_orm::sea_query::SubQueryStatement;
        match self {
            Self::Insert(statement) => SubQueryStatement::InsertStatement(statement),
            Self::Delete(statement) => SubQueryStatement::DeleteStatement(statement),
        }
    }
}

/// What a unit of work leaves for its commit: the writes it put off ([`write_later`]), the
/// events it recorded ([`append`]), and the guarded changes it put off ([`write_guarded`]),
/// each in the order they were made.
#[derive(Debug, Default)]
pub struct Deferred {
    /// Writes to apply at commit.
    pub writes: Vec<Write>,
    /// Events to record in the outbox at commit.
    pub events: Vec<EventEnvelope>,
    /// Updates to apply at commit, each with the rows and events that follow from it.
    pub guards: Vec<Guard>,
}

impl From<Vec<EventEnvelope>> for Deferred {
    fn from(events: Vec<EventEnvelope>) -> Self {
        Self { events, ..Self::default() }
    }
}

impl Deferred {
    /// The aggregates of the events it may record (guarded ones included).
    fn aggregates(&self) -> Vec<&str> {
        let guarded =
            self.guards.iter().flat_map(|guard| guard.events.iter().chain(&guard.otherwise));
        self.events.iter().chain(guarded).map(|e| e.aggregate_id.as_str()).collect()
    }
}

/// Rows for one table, kept as values so that they can be inserted as they are or only on a
/// condition (see [`Guard`]).
#[derive(Debug)]
struct Rows {
    table: sea_orm::sea_query::DynIden,
    columns: Vec<sea_orm::sea_query::DynIden>,
    values: Vec<Vec<sea_orm::Value>>,
}

impl Rows {
    /// The columns set in `models` (all set alike) and their values.
    fn of<A: sea_orm::ActiveModelTrait>(models: impl IntoIterator<Item = A>) -> Self {
        use sea_orm::sea_query::IntoIden;
        use sea_orm::{ActiveValue, Iterable};
        let mut columns = Vec::new();
        let mut values = Vec::new();
        for model in models {
            let mut row = Vec::new();
            for column in <A::Entity as EntityTrait>::Column::iter() {
                if let ActiveValue::Set(value) | ActiveValue::Unchanged(value) = model.get(column) {
                    if values.is_empty() {
                        columns.push(column.into_iden());
                    }
                    row.push(value);
                }
            }
            values.push(row);
        }
        Self { table: A::Entity::default().into_iden(), columns, values }
    }

    /// The plain insert.
    fn insert(&self) -> sea_orm::sea_query::InsertStatement {
        let mut insert = sea_orm::sea_query::Query::insert();
        insert.into_table(self.table.clone()).columns(self.columns.clone());
        for row in &self.values {
            // The rows were built with one value per column.
            let _ = insert.values(row.iter().cloned().map(Expr::val));
        }
        insert
    }

    /// The insert that writes the rows only if `condition` holds (in a guard's statement: on
    /// whether the update returned rows): one `SELECT` over a `VALUES` list, so the condition
    /// is planned and checked once whatever the number of rows.
    fn insert_where(
        &self,
        condition: sea_orm::sea_query::SimpleExpr,
    ) -> sea_orm::sea_query::InsertStatement {
        use sea_orm::sea_query::{Alias, Query, ValueTuple};
        let rows = Alias::new("v");
        let mut select = Query::select();
        // PostgreSQL names the columns of a `VALUES` list `column1`, `column2`, ….
        for n in 1..=self.columns.len() {
            select.expr(Expr::col((rows.clone(), Alias::new(format!("column{n}")))));
        }
        select
            .from_values(self.values.iter().map(|row| ValueTuple::Many(row.clone())), rows)
            .and_where(condition);
        let mut insert = Query::insert();
        insert.into_table(self.table.clone()).columns(self.columns.clone());
        // As many values per row as columns, by construction.
        let _ = insert.select_from(select);
        insert
    }
}

/// An update that rows and events depend on: they are written only if the update changes a
/// row, in the same unit. Lets a handler that read what it needed decide on a change without
/// locking anything: the update's condition checks, when it is applied, that what was read
/// still holds (the order is still pending, say), and if it no longer does, nothing that
/// followed from it is written. It may also name events to record when the update changes
/// nothing ([`Guard::otherwise`]: a refusal), and a query that, when it finds a row, makes the
/// guard do nothing either way ([`Guard::unless`]: the work was done before). See
/// [`write_guarded`].
#[derive(Debug)]
pub struct Guard {
    /// The tables it writes: its update's, then those of its rows.
    tables: Vec<String>,
    update: sea_orm::sea_query::UpdateStatement,
    rows: Vec<Rows>,
    events: Vec<EventEnvelope>,
    otherwise: Vec<EventEnvelope>,
    unless: Option<sea_orm::sea_query::SelectStatement>,
    /// The aggregate whose rows it changes, when it was put off inside [`about`].
    about: Option<String>,
}

impl Guard {
    /// A guard on `update`, with nothing depending on it yet.
    pub fn new<E: EntityTrait>(update: sea_orm::UpdateMany<E>) -> Self {
        use sea_orm::QueryTrait;
        Self {
            tables: vec![E::default().table_name().to_string()],
            update: update.into_query(),
            rows: Vec::new(),
            events: Vec::new(),
            otherwise: Vec::new(),
            unless: None,
            about: None,
        }
    }

    /// Also inserts `models` (all with the same columns set) when the update changes a row.
    pub fn insert<A: sea_orm::ActiveModelTrait>(
        mut self,
        models: impl IntoIterator<Item = A>,
    ) -> Self {
        let rows = Rows::of(models);
        if !rows.values.is_empty() {
            self.tables.push(<A::Entity as Default>::default().table_name().to_string());
            self.rows.push(rows);
        }
        self
    }

    /// Also records `events` in the outbox when the update changes a row.
    pub fn append(mut self, events: impl IntoIterator<Item = EventEnvelope>) -> Self {
        self.events.extend(events);
        self
    }

    /// Records `events` in the outbox when the update changes no row (and [`Guard::unless`]
    /// finds none).
    pub fn otherwise(mut self, events: impl IntoIterator<Item = EventEnvelope>) -> Self {
        self.otherwise.extend(events);
        self
    }

    /// Does nothing at all (no update, no rows, no events either way) when `found` finds a
    /// row, as the database is before the guard is applied.
    pub fn unless(mut self, found: sea_orm::sea_query::SelectStatement) -> Self {
        self.update.and_where(Expr::exists(found.clone()).not());
        self.unless = Some(found);
        self
    }

    /// Whether `sql` may read or write what the guard changes (it names one of its tables).
    fn concerns(&self, sql: &str) -> bool {
        self.tables.iter().any(|table| sql.contains(table.as_str()))
    }

    /// Whether `sql`, run by work about `here` (see [`about`]), may depend on the guard: it
    /// names one of its tables, unless both are about aggregates and not the same one.
    fn concerns_work(&self, sql: &str, here: Option<&str>) -> bool {
        let elsewhere = matches!((here, &self.about), (Some(here), Some(its)) if here != its);
        !elsewhere && self.concerns(sql)
    }

    /// Runs the update alone in `conn`; whether it changed a row.
    async fn update<C: ConnectionTrait>(&self, conn: &C) -> Result<bool, DbErr> {
        Ok(conn.execute(&self.update).await?.rows_affected() > 0)
    }

    /// Runs the update at once in `conn`: the rows and the events that follow from what it
    /// did.
    async fn decide<C: ConnectionTrait>(
        self,
        conn: &C,
    ) -> Result<(Vec<Rows>, Vec<EventEnvelope>), DbErr> {
        if self.update(conn).await? {
            return Ok((self.rows, self.events));
        }
        if let Some(found) = &self.unless
            && conn.query_one(found).await?.is_some()
        {
            return Ok((Vec::new(), Vec::new()));
        }
        Ok((Vec::new(), self.otherwise))
    }

    /// Applies it at once in `conn`: the update, then the rows that follow from it; the
    /// events to record.
    async fn apply<C: ConnectionTrait>(self, conn: &C) -> Result<Vec<EventEnvelope>, DbErr> {
        let (rows, events) = self.decide(conn).await?;
        for rows in &rows {
            conn.execute(&rows.insert()).await?;
        }
        Ok(events)
    }

    /// The condition under which the [`Guard::otherwise`] events are recorded, in a
    /// statement where `changed` tells whether the update changed a row.
    fn refused(&self, changed: sea_orm::sea_query::SimpleExpr) -> sea_orm::sea_query::SimpleExpr {
        let refused = changed.not();
        match &self.unless {
            Some(found) => refused.and(Expr::exists(found.clone()).not()),
            None => refused,
        }
    }
}

/// Applies `guard` in the caller's transaction `conn`: inside [`deferring`], at commit, in
/// the same statement as the outbox rows on PostgreSQL (its update and inserts, and its
/// events' outbox rows, each a part of that statement conditioned on the update's returned
/// rows); elsewhere at once. Until then, a statement of the same unit that names one of the
/// guard's tables applies it first (see [`super::unit::Unit`]), so the unit reads what it
/// would have read had the guard been applied at once. Guards put off together must not
/// depend on each other: the parts of one statement do not see each other's rows, and two
/// of them cannot both update one row. A handler whose change depends on a waiting guard
/// (see [`guards_due`]) makes it with a plain statement instead, which applies that guard
/// first.
pub async fn write_guarded<C: ConnectionTrait>(conn: &C, guard: Guard) -> Result<(), DbErr> {
    let mut guard = Some(Guard { about: ABOUT.try_with(Clone::clone).ok(), ..guard });
    let _ = DEFERRED.try_with(|deferred| deferred.borrow_mut().guards.extend(guard.take()));
    let Some(guard) = guard else { return Ok(()) };
    let events = guard.apply(conn).await?;
    append_all(conn, &events).await
}

/// Whether a guard put off in this task (inside [`deferring`]) concerns `sql`: one of its
/// tables is named in it, whatever aggregate it is [about]. A handler about to put off a
/// guard of its own asks this with a table's name, to learn whether a guard already waiting
/// changes that table (two updates of one row in one statement would not both apply).
pub fn guards_due(sql: &str) -> bool {
    DEFERRED
        .try_with(|deferred| deferred.borrow().guards.iter().any(|g| g.concerns(sql)))
        .unwrap_or(false)
}

/// Whether a guard put off in this task (inside [`deferring`]) must be applied before `sql`
/// runs: one of its tables is named in it, and it is not about another aggregate than the
/// work running now (see [`about`]).
pub(crate) fn guards_due_before(sql: &str) -> bool {
    DEFERRED
        .try_with(|deferred| last_due(&deferred.borrow().guards, sql).is_some())
        .unwrap_or(false)
}

/// The position of the last of `guards` that `sql`, run by the work running now, may depend
/// on (see [`Guard::concerns_work`]).
fn last_due(guards: &[Guard], sql: &str) -> Option<usize> {
    let last = |here: Option<&str>| guards.iter().rposition(|g| g.concerns_work(sql, here));
    ABOUT.try_with(|here| last(Some(here))).unwrap_or_else(|_| last(None))
}

/// Applies, in `conn`, the guards put off in this task (inside [`deferring`]) that `sql`
/// may depend on (see [`guards_due_before`]), with their rows, and keeps their events for the
/// commit like any recorded event.
pub(crate) async fn apply_guards_before<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
) -> Result<(), DbErr> {
    let due = DEFERRED
        .try_with(|deferred| {
            let mut deferred = deferred.borrow_mut();
            // Those before it too, in order: the one it concerns may depend on them.
            match last_due(&deferred.guards, sql) {
                Some(last) => deferred.guards.drain(..=last).collect(),
                None => Vec::new(),
            }
        })
        .unwrap_or_default();
    for guard in due {
        // Its rows too, at once: `sql` may read them.
        let events = guard.apply(conn).await?;
        let _ = DEFERRED.try_with(|deferred| deferred.borrow_mut().events.extend(events));
    }
    Ok(())
}

/// Applies `write` in the caller's transaction `conn`: inside [`deferring`], at commit, in the
/// same statement as the outbox rows on PostgreSQL (a data-modifying `WITH`), saving a round
/// trip; elsewhere at once. For writes that no later statement of the transaction depends on
/// (reads it, or touches the same rows): on PostgreSQL the parts of one statement all see the
/// database as it was before it, and none sees another's rows. Foreign keys are checked at the
/// end of the statement, so a row may refer to another row put off in the same commit.
pub async fn write_later<C: ConnectionTrait>(
    conn: &C,
    write: impl Into<Write>,
) -> Result<(), DbErr> {
    let mut write = Some(write.into());
    let _ = DEFERRED.try_with(|deferred| deferred.borrow_mut().writes.extend(write.take()));
    match write {
        Some(write) => write.execute(conn).await,
        None => Ok(()),
    }
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
    append_all(conn, std::slice::from_ref(event)).await
}

/// Records `events` in the outbox in one statement, inside whatever transaction `conn` is
/// (or, inside [`deferring`], hands them to the caller of `deferring`, as [`append`] does).
pub async fn append_all<C: ConnectionTrait>(
    conn: &C,
    events: &[EventEnvelope],
) -> Result<(), DbErr> {
    let deferred =
        DEFERRED.try_with(|deferred| deferred.borrow_mut().events.extend(events.iter().cloned()));
    if deferred.is_ok() {
        return Ok(());
    }
    write_all(conn, Deferred::from(events.to_vec()), None).await.map(drop)
}

/// Applies `deferred`'s writes, then (with `claim`) a consumer's inbox rows, then its events'
/// outbox rows, then its guards (each update, and what follows from it if it changed a row):
/// on PostgreSQL in one statement (a data-modifying `WITH`: one round trip for all),
/// elsewhere one statement each, in that order. Returns the events recorded: all of the
/// unguarded ones, and those of the guards that changed a row.
pub(crate) async fn write_all<C: ConnectionTrait>(
    conn: &C,
    deferred: Deferred,
    claim: Option<&Claim<'_>>,
) -> Result<Vec<EventEnvelope>, DbErr> {
    use sea_orm::QueryTrait;
    use sea_orm::sea_query::{
        Alias, CommonTableExpression, Query, QueryStatementBuilder, WithClause,
    };
    let Deferred { writes, mut events, guards } = deferred;
    let mut statements = writes;
    statements.extend(claim.map(|claim| Write::Insert(claim.insert())));
    if !events.is_empty() {
        statements
            .push(Write::Insert(entity::Entity::insert_many(events.iter().map(row)).into_query()));
    }
    let one_statement = guards.is_empty() && statements.len() <= 1;
    if conn.get_database_backend() != DbBackend::Postgres || one_statement {
        for statement in &statements {
            statement.execute(conn).await?;
        }
        for guard in guards {
            let recorded = guard.apply(conn).await?;
            if !recorded.is_empty() {
                entity::Entity::insert_many(recorded.iter().map(row))
                    .exec_without_returning(conn)
                    .await?;
                events.extend(recorded);
            }
        }
        return Ok(events);
    }
    let mut with = WithClause::new();
    let mut ctes = 0;
    let cte = |with: &mut WithClause, query: sea_orm::sea_query::SubQueryStatement, name| {
        with.cte(CommonTableExpression::new().query(query).table_name(Alias::new(name)).to_owned());
    };
    let last = if guards.is_empty() { statements.pop() } else { None };
    for statement in statements {
        cte(&mut with, statement.into_query(), format!("w{ctes}"));
        ctes += 1;
    }
    let Some(last) = last else {
        // The guards' parts, then a last part that tells which guards changed a row, and
        // which refused.
        let mut fired = Query::select();
        for (n, guard) in guards.iter().enumerate() {
            let name = format!("g{n}");
            let mut update = guard.update.clone();
            update.returning(Query::returning().expr(Expr::val(1)));
            cte(&mut with, update.into_sub_query_statement(), name.clone());
            let changed = Query::select().expr(Expr::val(1)).from(Alias::new(&name)).to_owned();
            let changed = Expr::exists(changed);
            let refused = (!guard.otherwise.is_empty()).then(|| guard.refused(changed.clone()));
            let outbox = |events: &[EventEnvelope]| {
                (!events.is_empty()).then(|| Rows::of(events.iter().map(row)))
            };
            let recorded = outbox(&guard.events);
            let mut parts: Vec<_> = guard
                .rows
                .iter()
                .chain(&recorded)
                .map(|r| r.insert_where(changed.clone()))
                .collect();
            if let (Some(refusals), Some(refused)) = (outbox(&guard.otherwise), &refused) {
                parts.push(refusals.insert_where(refused.clone()));
            }
            for insert in parts {
                cte(&mut with, insert.into_sub_query_statement(), format!("w{ctes}"));
                ctes += 1;
            }
            fired.expr_as(changed, Alias::new(format!("f{n}")));
            if let Some(refused) = refused {
                fired.expr_as(refused, Alias::new(format!("r{n}")));
            }
        }
        let answer = conn.query_one(&with.query(fired)).await?;
        let said = |column: String| -> Result<bool, DbErr> {
            match &answer {
                Some(answer) => answer.try_get::<bool>("", &column),
                None => Ok(false),
            }
        };
        for (n, guard) in guards.into_iter().enumerate() {
            if said(format!("f{n}"))? {
                events.extend(guard.events);
            } else if !guard.otherwise.is_empty() && said(format!("r{n}"))? {
                events.extend(guard.otherwise);
            }
        }
        return Ok(events);
    };
    conn.execute(&with.query(last.into_query())).await?;
    Ok(events)
}

/// Runs `work` with every [`append`], [`append_all`] and [`write_later`] it makes (in this
/// task) held back, and returns them in order beside its output, for the caller to commit with
/// [`OutboxRelay::commit`]: on PostgreSQL they are written in one statement, and the events
/// are handed to the relay once committed. Work that fails drops what it held back, as its
/// transaction would have.
pub async fn deferring<T>(work: impl Future<Output = T>) -> (T, Deferred) {
    DEFERRED
        .scope(std::cell::RefCell::new(Deferred::default()), async move {
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
/// Writers commit through [`OutboxRelay::commit`], which hands the committed events to the
/// relay in memory: they go out at once, without the relay reading them back, and their rows
/// are deleted a little later, many per statement. Rows written any other way, and rows a
/// crash or a bus outage left behind, are found by reading the outbox: at start, after a
/// failure, on [`OutboxRelay::wake`], and in a periodic sweep.
///
/// Order: each transaction takes a ticket just before committing; events go out in ticket
/// order per aggregate (a ticket's events wait for every older ticket about one of the same
/// aggregates, and for nothing else). A transaction that saw another's commit takes its
/// ticket after that one did, so one aggregate's events leave in commit order. After
/// a failure to publish, handed events are left to the outbox reading until it has caught
/// up, so nothing newer overtakes what is still pending.
#[derive(Clone)]
pub struct OutboxRelay {
    db: DatabaseConnection,
    bus: Arc<dyn EventBus>,
    feed: Option<Arc<dyn LocalFeed>>,
    shared: Arc<Shared>,
}

/// What writers and the relay's task share.
#[derive(Default)]
struct Shared {
    /// Wakes the relay's task: events were handed over, or a reading was asked for.
    notify: Notify,
    /// A reading of the outbox was asked for ([`OutboxRelay::wake`]).
    read_asked: std::sync::atomic::AtomicBool,
    handoffs: std::sync::Mutex<Handoffs>,
}

/// Tickets taken before commits, and the events of those that have settled.
#[derive(Default)]
struct Handoffs {
    /// The next ticket to give out.
    issued: u64,
    /// Tickets not settled yet, with the aggregates their events are about.
    open: BTreeMap<u64, Vec<String>>,
    /// Settled tickets not taken yet, with their committed events.
    settled: BTreeMap<u64, Vec<EventEnvelope>>,
}

impl Handoffs {
    /// The events of the settled tickets that nothing older holds back, in ticket order: a
    /// ticket waits for every older one, open or waiting itself, about one of its aggregates
    /// (one slow commit does not hold up other aggregates' events).
    fn take_ready(&mut self) -> Vec<EventEnvelope> {
        let mut held: HashSet<&str> = HashSet::new();
        let mut older_open = self.open.iter().peekable();
        let mut ready_tickets = Vec::new();
        for (&ticket, events) in &self.settled {
            while let Some((_, aggregates)) = older_open.next_if(|(open, _)| **open < ticket) {
                held.extend(aggregates.iter().map(String::as_str));
            }
            if events.iter().any(|e| held.contains(e.aggregate_id.as_str())) {
                held.extend(events.iter().map(|e| e.aggregate_id.as_str()));
            } else {
                ready_tickets.push(ticket);
            }
        }
        let mut ready = Vec::new();
        for ticket in ready_tickets {
            ready.extend(self.settled.remove(&ticket).unwrap_or_default());
        }
        ready
    }
}

/// A place in the relay's order, taken just before a commit (with the aggregates of the
/// events it wrote) and settled after it with those events. Dropped unsettled (the commit
/// failed, or the task was cancelled), it hands nothing over: rows that did commit are then
/// found by the relay's next reading.
struct Handoff {
    shared: Arc<Shared>,
    ticket: u64,
    events: Option<Vec<EventEnvelope>>,
}

impl Handoff {
    /// Takes a place in the relay's order for a transaction about to commit `events`.
    fn take<'a>(shared: &Arc<Shared>, aggregates: impl IntoIterator<Item = &'a str>) -> Self {
        let mut aggregates: Vec<String> = aggregates.into_iter().map(str::to_string).collect();
        aggregates.sort_unstable();
        aggregates.dedup();
        let mut handoffs = shared.handoffs.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = handoffs.issued;
        handoffs.issued += 1;
        handoffs.open.insert(ticket, aggregates);
        Self { shared: shared.clone(), ticket, events: None }
    }

    /// Hands over the events the commit recorded.
    fn send(mut self, events: Vec<EventEnvelope>) {
        self.events = Some(events);
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        let mut handoffs = self.shared.handoffs.lock().unwrap_or_else(|p| p.into_inner());
        handoffs.open.remove(&self.ticket);
        if let Some(events) = self.events.take() {
            handoffs.settled.insert(self.ticket, events);
        }
        drop(handoffs);
        self.shared.notify.notify_one();
    }
}

/// Published rows deleted in one statement once this many wait…
const FORGET_BATCH: usize = 256;
/// …or once the oldest has waited this long.
const FORGET_DELAY: Duration = Duration::from_millis(100);

impl OutboxRelay {
    /// A relay from `db`'s outbox to `bus`.
    pub fn new(db: DatabaseConnection, bus: Arc<dyn EventBus>) -> Self {
        Self { db, bus, feed: None, shared: Arc::default() }
    }

    /// The same relay, handing `feed`'s event types to it instead of the bus.
    pub fn with_feed(mut self, feed: Arc<dyn LocalFeed>) -> Self {
        self.feed = Some(feed);
        self
    }

    /// Asks the relay to read the outbox now (for rows written without
    /// [`OutboxRelay::commit`]).
    pub fn wake(&self) {
        self.shared.read_asked.store(true, std::sync::atomic::Ordering::Release);
        self.shared.notify.notify_one();
    }

    /// Applies what `txn`'s work put off (its [`Deferred`] writes, or just events), records
    /// the events in `txn`'s outbox, commits, and hands the events to the relay.
    pub async fn commit(
        &self,
        txn: DatabaseTransaction,
        deferred: impl Into<Deferred>,
    ) -> Result<(), DbErr> {
        self.commit_claiming(txn, None, deferred.into()).await
    }

    /// As [`OutboxRelay::commit`], writing a consumer's inbox rows (`claim`) with the
    /// outbox rows.
    pub(crate) async fn commit_claiming(
        &self,
        txn: DatabaseTransaction,
        claim: Option<&Claim<'_>>,
        deferred: Deferred,
    ) -> Result<(), DbErr> {
        if deferred.events.is_empty() && deferred.guards.is_empty() {
            write_all(&txn, deferred, claim).await?;
            return txn.commit().await;
        }
        let handoff = Handoff::take(&self.shared, deferred.aggregates());
        let events = write_all(&txn, deferred, claim).await?;
        txn.commit().await?;
        handoff.send(events);
        Ok(())
    }

    /// Applies `writes` and records `events` as one unit of work on the relay's own database,
    /// needing nothing read in between: on PostgreSQL in a single statement outside any
    /// transaction block (a statement is atomic by itself, and this saves the round trips of
    /// `BEGIN` and `COMMIT`), elsewhere in a transaction. Then hands the events to the relay.
    pub async fn commit_alone(&self, deferred: Deferred) -> Result<(), DbErr> {
        self.commit_alone_claiming(None, deferred).await
    }

    /// As [`OutboxRelay::commit_alone`], writing a consumer's inbox rows (`claim`) with the
    /// outbox rows.
    pub(crate) async fn commit_alone_claiming(
        &self,
        claim: Option<&Claim<'_>>,
        deferred: Deferred,
    ) -> Result<(), DbErr> {
        use sea_orm::TransactionTrait;
        if self.db.get_database_backend() != DbBackend::Postgres {
            let txn = self.db.begin().await?;
            return self.commit_claiming(txn, claim, deferred).await;
        }
        let recording = !deferred.events.is_empty() || !deferred.guards.is_empty();
        let handoff = recording.then(|| Handoff::take(&self.shared, deferred.aggregates()));
        let events = write_all(&self.db, deferred, claim).await?;
        if let Some(handoff) = handoff {
            handoff.send(events);
        }
        Ok(())
    }

    /// Hands `events` to the feed (its types) and the bus (the rest), in order; the ids of
    /// those that went out, and the first failure.
    async fn send(&self, events: Vec<EventEnvelope>) -> (Vec<Uuid>, Option<anyhow::Error>) {
        let (local, events): (Vec<EventEnvelope>, Vec<EventEnvelope>) =
            events.into_iter().partition(|e| {
                self.feed.as_ref().is_some_and(|f| f.types().contains(&e.event_type.as_str()))
            });
        let mut sent: Vec<Uuid> = Vec::with_capacity(local.len() + events.len());
        let mut failure = None;
        if let (Some(feed), false) = (&self.feed, local.is_empty()) {
            match feed.deliver(&local).await {
                Ok(()) => sent.extend(local.iter().map(|e| e.id)),
                Err(error) => failure = Some(error),
            }
        }
        // A batch of feed events only has nothing for the bus.
        let (published, bus_failure) =
            if events.is_empty() { (0, None) } else { self.bus.publish_all(&events).await };
        sent.extend(events.iter().take(published).map(|e| e.id));
        (sent, failure.or(bus_failure))
    }

    /// Deletes the rows of the published events `ids`, up to [`FORGET_BATCH`] per statement
    /// (however many went out while the database was slow: a statement takes a bounded
    /// number of parameters). Deleting rather than marking them keeps the outbox to what is
    /// pending and costs the database least: a deletion touches no index, where an update
    /// writes the whole row again with its index entries.
    pub(crate) async fn forget(&self, ids: &[Uuid]) -> Result<(), DbErr> {
        for chunk in ids.chunks(FORGET_BATCH) {
            entity::Entity::delete_many()
                .filter(entity::Column::Id.is_in(chunk.iter().copied()))
                .exec(&self.db)
                .await?;
        }
        Ok(())
    }

    /// [`Self::forget`] for those of `ids` the bus no longer owes to anyone (all of them,
    /// for a bus that keeps what it accepted); the ids it still owes.
    async fn forget_settled(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, DbErr> {
        let owed = self.bus.still_owed(ids);
        if owed.is_empty() {
            self.forget(ids).await?;
        } else {
            let settled: Vec<Uuid> = ids.iter().filter(|id| !owed.contains(id)).copied().collect();
            self.forget(&settled).await?;
        }
        Ok(owed)
    }

    /// Reads the outbox and publishes its pending rows until none are left; returns how many
    /// were published.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut published = Vec::new();
        self.read_out(&mut published, &mut HashSet::new()).await?;
        Ok(published.len())
    }

    /// [`Self::drain`], adding the ids of what went out to `out` (also what went out before
    /// a failure), and to `kept` those whose rows stay because the bus still owes them.
    #[tracing::instrument(skip_all, name = "outbox_drain")]
    async fn read_out(&self, out: &mut Vec<Uuid>, kept: &mut HashSet<Uuid>) -> anyhow::Result<()> {
        let mut after: Option<Uuid> = None;
        loop {
            // Every row left is pending, or still owed by the bus (see `forget_settled`):
            // read on from the last one seen, as owed rows are not deleted yet.
            let batch = entity::Entity::find()
                .apply_if(after, |query, id| query.filter(entity::Column::Id.gt(id)))
                .order_by_asc(entity::Column::Id)
                .limit(BATCH)
                .all(&self.db)
                .await?;
            let Some(newest) = batch.last() else {
                return Ok(());
            };
            after = Some(newest.id);
            // A short batch was the last one: no need to ask again.
            let last = (batch.len() as u64) < BATCH;
            // What this process's bus still holds went out already: not sent twice.
            let ids: Vec<Uuid> = batch.iter().map(|row| row.id).collect();
            let in_flight = self.bus.still_owed(&ids);
            let batch = batch.into_iter().filter(|row| !in_flight.contains(&row.id));
            // Deleted in one statement per batch, including after a failure for what did go
            // out.
            let (published, failure) = self.send(batch.map(EventEnvelope::from).collect()).await;
            kept.extend(self.forget_settled(&published).await?);
            out.extend(published);
            if let Some(error) = failure {
                return Err(error);
            }
            if last {
                return Ok(());
            }
        }
    }

    /// Runs until `shutdown` resolves: publishes handed events as they come, reads the outbox
    /// at start, when asked, after a failure and every `sweep`, and deletes what went out.
    pub async fn run(self, sweep: Duration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        // Published, not deleted yet.
        let mut unforgotten: Vec<Uuid> = Vec::new();
        let mut forget_by: Option<tokio::time::Instant> = None;
        // The last deletion failed: the next waits for `forget_by`, however many pile up.
        let mut forgetting_failed = false;
        // Of `unforgotten`, how many the bus still owed at the last deletion: a batch is full
        // with that many more (not at once again while a backlog of owed events waits).
        let mut kept = 0;
        // Whether the outbox may hold rows older than what is handed over now: at start (a
        // previous run may have left some), and after a failure. Handed events then wait for
        // a reading that catches up.
        let mut behind = true;
        let mut next_sweep = tokio::time::Instant::now();
        // What the last reading published. A transaction that committed just before a reading
        // may hand its events over only after the reading sent them: they are not sent again.
        // (Kept until the next reading: a hand-over later than that is sent twice, which
        // consumers' inboxes absorb.)
        let mut sent_by_reading: HashSet<Uuid> = HashSet::new();
        loop {
            let mut ready = {
                let mut handoffs = self.shared.handoffs.lock().unwrap_or_else(|p| p.into_inner());
                handoffs.take_ready()
            };
            if !sent_by_reading.is_empty() {
                ready.retain(|event| !sent_by_reading.remove(&event.id));
            }
            // While behind, the reading below publishes these (they are committed rows).
            if !ready.is_empty() && !behind {
                let (sent, failure) = self.send(ready).await;
                if unforgotten.is_empty() && !sent.is_empty() {
                    forget_by = Some(tokio::time::Instant::now() + FORGET_DELAY);
                }
                unforgotten.extend(sent);
                if let Some(error) = failure {
                    tracing::error!(error = ?error, "publishing events failed; will retry");
                    behind = true;
                    next_sweep = tokio::time::Instant::now() + RETRY;
                }
            }
            let now = tokio::time::Instant::now();
            let read_asked =
                self.shared.read_asked.swap(false, std::sync::atomic::Ordering::AcqRel);
            let read = read_asked || now >= next_sweep;
            // Deleted before any reading, so that the reading does not send them again.
            let full = unforgotten.len() >= kept + FORGET_BATCH && !forgetting_failed;
            if full || forget_by.is_some_and(|by| now >= by) || read {
                match self.forget_settled(&unforgotten).await {
                    // What the bus still owes waits for another turn.
                    Ok(owed) => {
                        unforgotten.retain(|id| owed.contains(id));
                        kept = unforgotten.len();
                        forget_by = (!unforgotten.is_empty()).then(|| now + FORGET_DELAY);
                        forgetting_failed = false;
                    }
                    // Left to try again a little later (not at once: the database may be
                    // down); a reading meanwhile may send them twice, which consumers'
                    // inboxes absorb.
                    Err(error) => {
                        tracing::error!(%error, "deleting relayed events failed; will retry");
                        forget_by = Some(now + RETRY);
                        forgetting_failed = true;
                    }
                }
            }
            if read {
                let (mut published, mut owed) = (Vec::new(), HashSet::new());
                let reading = self.read_out(&mut published, &mut owed).await;
                // Rows the bus still owes stay: deleted once it no longer does.
                if !owed.is_empty() {
                    forget_by = forget_by.or(Some(tokio::time::Instant::now() + FORGET_DELAY));
                    unforgotten.extend(owed);
                }
                sent_by_reading = published.into_iter().collect();
                match reading {
                    Ok(()) => {
                        behind = false;
                        next_sweep = tokio::time::Instant::now() + sweep;
                    }
                    Err(error) => {
                        tracing::error!(error = ?error, "outbox relay failed; will retry");
                        behind = true;
                        next_sweep = tokio::time::Instant::now() + RETRY.min(sweep);
                    }
                }
            }
            let wake_at = forget_by.map_or(next_sweep, |by| by.min(next_sweep));
            tokio::select! {
                _ = &mut shutdown => {
                    // What the bus still owes keeps its row: relayed again at the next start.
                    if let Err(error) = self.forget_settled(&unforgotten).await {
                        tracing::error!(%error, "deleting relayed events failed");
                    }
                    return;
                }
                _ = self.shared.notify.notified() => {}
                _ = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }
}

/// How soon the outbox is read again after a failure.
const RETRY: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    fn event(aggregate: &str, seq: i64) -> EventEnvelope {
        EventEnvelope::new("thing.changed", 1, aggregate, serde_json::json!({ "seq": seq }))
    }

    #[test]
    fn an_aggregates_events_leave_in_ticket_order_and_others_are_not_held_up() {
        let shared = Arc::new(Shared::default());
        let take = || shared.handoffs.lock().unwrap().take_ready();
        let ids = |events: Vec<EventEnvelope>| events.iter().map(|e| e.id).collect::<Vec<_>>();
        let (a1, b1, a2, a3) = (event("a", 1), event("b", 1), event("a", 2), event("a", 3));
        let first = Handoff::take(&shared, [a1.aggregate_id.as_str()]);
        let other = Handoff::take(&shared, [b1.aggregate_id.as_str()]);
        let second = Handoff::take(&shared, [a2.aggregate_id.as_str()]);
        let third = Handoff::take(&shared, [a3.aggregate_id.as_str()]);

        // A later commit about `a` settles first: it waits for the one still in flight; one
        // about `b` does not.
        second.send(vec![a2.clone()]);
        other.send(vec![b1.clone()]);
        assert_eq!(ids(take()), vec![b1.id], "only the other aggregate's event goes");
        first.send(vec![a1.clone()]);
        assert_eq!(ids(take()), vec![a1.id, a2.id], "then `a`'s, in order");

        // A commit that failed (its ticket dropped unsettled) holds nothing up.
        let fourth = Handoff::take(&shared, [a3.aggregate_id.as_str()]);
        drop(third);
        fourth.send(vec![a3.clone()]);
        assert_eq!(ids(take()), vec![a3.id]);
        assert!(take().is_empty(), "each event once");
    }

    #[tokio::test]
    async fn events_a_reading_sent_are_not_sent_again_when_their_commit_hands_them_over() {
        use futures::StreamExt;
        use sea_orm::TransactionTrait;

        let (db, _scratch) = super::super::tests::database_with_outbox().await;
        let bus = Arc::new(crate::events::bus::InProcessBus::default());
        let relay = OutboxRelay::new(db.clone(), bus.clone());
        let mut seen = bus.subscribe("test", &["thing"]);
        // A commit whose hand-over comes late: its row is committed, its ticket still open.
        let (first, second) = (event("a", 1), event("a", 2));
        let txn = db.begin().await.unwrap();
        write_all(&txn, vec![first.clone()].into(), None).await.unwrap();
        let late = Handoff::take(&relay.shared, [first.aggregate_id.as_str()]);
        txn.commit().await.unwrap();

        // The relay's first reading finds the committed row and sends it.
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(relay.clone().run(Duration::from_secs(3600), async {
            let _ = stopped.await;
        }));
        let wait = Duration::from_secs(10);
        let sent = tokio::time::timeout(wait, seen.next()).await.unwrap().unwrap();
        assert_eq!(sent.id, first.id);

        // Then the hand-over arrives, and after it a later commit's events.
        late.send(vec![first.clone()]);
        let txn = db.begin().await.unwrap();
        relay.commit(txn, vec![second.clone()]).await.unwrap();
        let after = tokio::time::timeout(wait, seen.next()).await.unwrap().unwrap();
        assert_eq!(after.id, second.id, "the first event went out once, the second next");
        let _ = stop.send(());
        running.await.unwrap();
    }
}
