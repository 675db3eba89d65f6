//! The unit of work a consumer hands its handler: a transaction begun at the first statement
//! that needs one.
//!
//! A handler that only reads before it writes, and puts every write off to the commit
//! ([`write_later`](super::outbox::write_later), [`append`](super::outbox::append)), needs no
//! transaction block at all: its reads see what they would see inside one, and its writes go
//! out with the inbox and outbox rows as one statement, atomic by itself. Beginning lazily
//! saves that handler the round trips of `BEGIN` and `COMMIT`; any other handler gets its
//! transaction at its first write, as before.
//!
//! Why a read before the first write may run outside the transaction: under `READ COMMITTED`
//! (the default on PostgreSQL) each statement sees what was committed when it started, in a
//! transaction or not, and a plain `SELECT` takes no row locks. So until the transaction has
//! written or locked something, a read outside it sees exactly what it would see inside. A
//! locking read (`FOR UPDATE`, `FOR SHARE`, …) holds its locks until the commit, so it begins
//! the transaction. On SQLite every statement begins it: there one connection serializes all
//! writers, so a read in the transaction also keeps others from writing before the unit
//! does, and the handlers' reads keep that.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement, TransactionTrait,
};
use tokio::sync::OnceCell;

use super::outbox;

/// A transaction over a consumer's database, begun by the first statement that writes or
/// locks (on SQLite: by the first statement); reads before it run on the pool. See the
/// [module](self) documentation.
pub struct Unit {
    db: DatabaseConnection,
    txn: OnceCell<DatabaseTransaction>,
}

impl Unit {
    /// A unit over `db`, with nothing begun yet.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db, txn: OnceCell::new() }
    }

    /// The transaction, begun now if it was not.
    pub async fn transaction(&self) -> Result<&DatabaseTransaction, DbErr> {
        self.txn.get_or_try_init(|| self.db.begin()).await
    }

    /// The transaction, if a statement began it; `None` when the work only read.
    pub fn into_begun(self) -> Option<DatabaseTransaction> {
        self.txn.into_inner()
    }

    /// Applies the guards put off in this unit that `sql` may depend on
    /// ([`outbox::write_guarded`]), in the transaction.
    async fn apply_guards_before(&self, sql: &str) -> Result<(), DbErr> {
        // Checked first: the transaction begins only when a guard is due.
        if outbox::guards_due_before(sql) {
            outbox::apply_guards_before(self.transaction().await?, sql).await?;
        }
        Ok(())
    }

    /// Where a read goes: the transaction once it is begun (a read must see the unit's own
    /// writes), else the pool, unless the read locks rows or the database is SQLite.
    async fn reader(&self, sql: &str) -> Result<Reader<'_>, DbErr> {
        match self.txn.get() {
            Some(txn) => Ok(Reader::Txn(txn)),
            None if locks(sql) || self.db.get_database_backend() != DbBackend::Postgres => {
                Ok(Reader::Txn(self.transaction().await?))
            }
            None => Ok(Reader::Pool(&self.db)),
        }
    }
}

enum Reader<'a> {
    Pool(&'a DatabaseConnection),
    Txn(&'a DatabaseTransaction),
}

/// Whether `sql` may take locks or write: anything but a plain `SELECT`. Conservative: a
/// statement that merely mentions ` FOR ` is treated as locking, which only costs it the
/// transaction it would have had anyway.
fn locks(sql: &str) -> bool {
    let sql = sql.trim_start();
    let select = sql.get(..6).is_some_and(|head| head.eq_ignore_ascii_case("SELECT"));
    // Searched in place: this runs for every read before a unit's first write.
    !select || sql.as_bytes().windows(5).any(|w| w.eq_ignore_ascii_case(b" FOR "))
}

#[async_trait::async_trait]
impl ConnectionTrait for Unit {
    fn get_database_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.apply_guards_before(&stmt.sql).await?;
        self.transaction().await?.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.apply_guards_before(sql).await?;
        self.transaction().await?.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.apply_guards_before(&stmt.sql).await?;
        match self.reader(&stmt.sql).await? {
            Reader::Pool(db) => db.query_one_raw(stmt).await,
            Reader::Txn(txn) => txn.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.apply_guards_before(&stmt.sql).await?;
        match self.reader(&stmt.sql).await? {
            Reader::Pool(db) => db.query_all_raw(stmt).await,
            Reader::Txn(txn) => txn.query_all_raw(stmt).await,
        }
    }

    fn support_returning(&self) -> bool {
        self.db.support_returning()
    }
}

#[cfg(test)]
mod tests {
    use super::locks;

    #[test]
    fn only_plain_selects_may_run_before_the_transaction() {
        assert!(!locks(r#"SELECT "id" FROM "orders" WHERE "id" = $1"#));
        assert!(!locks("  select 1"));
        assert!(locks(r#"SELECT "id" FROM "orders" WHERE "id" = $1 FOR UPDATE"#));
        assert!(locks(r#"SELECT "id" FROM "stock" FOR NO KEY UPDATE SKIP LOCKED"#));
        assert!(locks(r#"select * from t for share"#));
        assert!(locks(r#"UPDATE "orders" SET "status" = $1 RETURNING *"#));
        assert!(locks(r#"WITH "w0" AS (INSERT INTO "inbox" VALUES ($1)) SELECT 1"#));
        assert!(locks(r#"INSERT INTO "t" VALUES ($1)"#));
        assert!(locks("SEL"));
    }
}
