//! Database connections. One URL decides the backend: without one, each bounded context gets
//! its own SQLite file under the data folder; with a `postgres://` URL each context gets its
//! own schema in that database. Either way a context sees only its own tables.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use secrecy::ExposeSecret;

use crate::config::DatabaseSettings;

/// A pooled connection idle this long is checked (a round trip to the server) before it is
/// handed out; one in steady use is not (HikariCP's rule, with its half second rounded up).
/// sqlx checks every connection on every hand-out by default, which on PostgreSQL is a hidden
/// round trip (a `Sync` and its answer) before each transaction and each statement outside
/// one: invisible in the server's statement log, seen in its `sendto` calls (77.5 per
/// checkout before, 64.4 after, side by side at 100 checkouts/s). A connection that breaks
/// while in steady use (a server restart under load) fails its next statement and leaves the
/// pool; event consumers retry, and a client sees one `INTERNAL` error per such connection.
const CHECK_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// Opens the database of one bounded context (`context` is its name, e.g. `catalog`).
///
/// The URL (which may hold a password) is never logged; the log names the backend only.
pub async fn connect(
    settings: &DatabaseSettings,
    data_dir: &Path,
    context: &str,
) -> anyhow::Result<DatabaseConnection> {
    match &settings.url {
        Some(url) if url.expose_secret().starts_with("postgres") => {
            let schema = format!("{}{}", settings.schema_prefix, context);
            connect_postgres(url.expose_secret(), &schema, settings.max_connections).await
        }
        Some(url) if url.expose_secret().starts_with("sqlite:") => {
            let dir =
                url.expose_secret().trim_start_matches("sqlite://").trim_start_matches("sqlite:");
            connect_sqlite(Path::new(dir), context, settings.max_connections).await
        }
        Some(_) => anyhow::bail!("database.url must start with postgres:// or sqlite:"),
        None => connect_sqlite(data_dir, context, settings.max_connections).await,
    }
}

async fn connect_sqlite(
    dir: &Path,
    context: &str,
    max_connections: Option<u32>,
) -> anyhow::Result<DatabaseConnection> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data folder {}", dir.display()))?;
    let file = dir.join(format!("{context}.db"));
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let mut options = ConnectOptions::new(url);
    options
        // One connection by default. SQLite takes one writer at a time, and a second
        // connection that wants to write while another does is not queued: it sleeps and
        // retries, backing off up to 100 ms per try. Under concurrent writes that made the
        // slowest commits wait tens of milliseconds for a lock free long before (measured:
        // live status p99 88 ms with ten connections, 5 ms with one). The pool queues
        // statements in order instead, and SQLite statements on a local file are short.
        // The price: a context's reads queue behind its writes (checkout at 200/s: p99 308 →
        // 368 ms). A busy handler that retries after short sleeps, with ten connections, was
        // measured too: as fast for live status, but its polling made checkout slower still.
        // A split into one writing and several reading connections is the next step.
        .max_connections(max_connections.unwrap_or(1))
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire_if_idle_for(CHECK_WHEN_IDLE_FOR)
        .sqlx_logging(false)
        // Per connection: in WAL mode, `synchronous = NORMAL` syncs at checkpoints rather than
        // at every commit. A crash of the process loses nothing; a power cut may lose the last
        // commits, never the file's integrity. The embedded mode's trade (production runs on
        // PostgreSQL). Foreign keys on (sqlx's default, said here because contexts rely on
        // `ON DELETE CASCADE`).
        .map_sqlx_sqlite_opts(|o| {
            o.synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal).foreign_keys(true)
        });
    let db = Database::connect(options)
        .await
        .with_context(|| format!("opening SQLite database {}", file.display()))?;
    // WAL lets readers proceed while one writer commits; it is a property of the file.
    db.execute_unprepared("PRAGMA journal_mode=WAL").await.context("enabling WAL")?;
    tracing::debug!(context, file = %file.display(), "connected to SQLite");
    Ok(db)
}

async fn connect_postgres(
    url: &str,
    schema: &str,
    max_connections: Option<u32>,
) -> anyhow::Result<DatabaseConnection> {
    anyhow::ensure!(
        schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "schema name `{schema}` may hold only letters, digits and `_`"
    );
    // Create the schema first over a plain connection, then open the pool pinned to it.
    let bootstrap = Database::connect(ConnectOptions::new(url).sqlx_logging(false).to_owned())
        .await
        .context("connecting to PostgreSQL")?;
    bootstrap
        .execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .await
        .with_context(|| format!("creating schema {schema}"))?;
    bootstrap.close().await.ok();

    let mut options = ConnectOptions::new(url);
    options
        // Four by default: ten contexts then hold at most 40 connections per process, so two
        // replicas fit in PostgreSQL's default of 100 with room for operators' tools (with
        // ten, one process could take all 100 under load). Measured on the checkout bench at
        // 80/s: the same CPU per checkout and latency within run-to-run spread as with ten.
        .max_connections(max_connections.unwrap_or(4))
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire_if_idle_for(CHECK_WHEN_IDLE_FOR)
        .set_schema_search_path(schema)
        .sqlx_logging(false);
    let db = Database::connect(options).await.context("connecting to PostgreSQL")?;
    tracing::debug!(schema, "connected to PostgreSQL");
    Ok(db)
}

/// Checks that the database answers (the `/ready` probe).
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.ping().await.is_ok()
}

#[cfg(test)]
mod tests {
    use sea_orm::TransactionTrait;

    use super::*;

    #[tokio::test]
    async fn concurrent_writers_on_one_sqlite_file_all_commit() {
        let dir = std::env::temp_dir().join(format!("bs-db-{}", uuid::Uuid::now_v7().simple()));
        let db = connect_sqlite(&dir, "writers", Some(8)).await.unwrap();
        db.execute_unprepared("CREATE TABLE t (n INTEGER NOT NULL)").await.unwrap();
        // An operator may raise the pool size: eight connections writing at once each wait
        // for the file's lock (the busy timeout) and none fails with "database is locked".
        let writers = (0..8).map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let txn = db.begin().await?;
                    txn.execute_unprepared(&format!("INSERT INTO t (n) VALUES ({})", w * 100 + i))
                        .await?;
                    txn.commit().await?;
                }
                Ok::<_, sea_orm::DbErr>(())
            })
        });
        for writer in futures::future::join_all(writers).await {
            writer.unwrap().unwrap();
        }
        let count = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) AS c FROM t",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "c")
            .unwrap();
        assert_eq!(count, 400);
        db.close().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    async fn backend_pid(db: &DatabaseConnection) -> Result<i32, sea_orm::DbErr> {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT pg_backend_pid() AS pid",
            ))
            .await?
            .ok_or_else(|| sea_orm::DbErr::RecordNotFound("no pid".into()))?;
        row.try_get::<i32>("", "pid")
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_replaced_before_use() {
        // PostgreSQL only (CI sets the URL): a SQLite file cannot go away under its pool.
        let Ok(url) = std::env::var("TEST_DATABASE_URL") else { return };
        let schema = format!("idle_{}", uuid::Uuid::now_v7().simple());
        let db = connect_postgres(&url, &schema, Some(1)).await.unwrap();
        let first = backend_pid(&db).await.unwrap();
        let admin = Database::connect(ConnectOptions::new(url).sqlx_logging(false).to_owned())
            .await
            .unwrap();
        admin.execute_unprepared(&format!("SELECT pg_terminate_backend({first})")).await.unwrap();
        // Idle past the threshold (the property under test is about idle time): the pool
        // checks the connection before handing it out, finds it closed, and opens another.
        tokio::time::sleep(CHECK_WHEN_IDLE_FOR + Duration::from_millis(300)).await;
        let second = backend_pid(&db).await.expect("the pool handed out a closed connection");
        assert_ne!(first, second);
        db.close().await.unwrap();
        admin.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE")).await.unwrap();
        admin.close().await.unwrap();
    }
}
