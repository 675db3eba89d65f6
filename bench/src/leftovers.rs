//! What a benchmark run leaves in PostgreSQL and Redis outlives it: each run works under
//! names of its own (schemas `{prefix}*`, keys `{namespace}:*`), and removes them at the end.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

/// Points `settings` at PostgreSQL and/or Redis when given, under names of this run's own:
/// schemas `{run}{pid}_*`, keys `{run}{pid}:*`.
pub fn isolate(
    settings: &mut kernel::config::Settings,
    run: &str,
    database_url: Option<&str>,
    redis_url: Option<&str>,
) {
    let own = format!("{run}{}", std::process::id());
    if let Some(db) = database_url {
        settings.database.url = Some(db.to_string().into());
        settings.database.schema_prefix = format!("{own}_");
    }
    if let Some(redis) = redis_url {
        settings.events.redis_url = Some(redis.to_string().into());
        settings.events.namespace = own;
    }
}

/// Drops every schema whose name starts with `schema_prefix` (through `db`, any pool of the
/// run), and deletes every Redis key under `namespace` at `redis_url`.
pub async fn remove(
    db: Option<&DatabaseConnection>,
    schema_prefix: &str,
    redis_url: Option<&str>,
    namespace: &str,
) -> anyhow::Result<()> {
    if let Some(db) = db {
        // `_` is a LIKE wildcard: the prefix is matched as written.
        let pattern = format!("{}%", schema_prefix.replace('_', "\\_"));
        let schemas = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1",
                [pattern.into()],
            ))
            .await?;
        for row in schemas {
            let schema: String = row.try_get("", "nspname")?;
            db.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE")).await?;
        }
    }
    if let Some(url) = redis_url {
        let mut conn = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{namespace}:*")).query_async(&mut conn).await?;
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
        }
    }
    Ok(())
}
