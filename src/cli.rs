//! The command line: `serve` (the default), `migrate`, `seed` and `schema`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kernel::config::Settings;
use migrations::MigratorTrait;

use crate::platform::{Listen, Platform, Service};

/// Better Store: a federated GraphQL commerce platform.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// A TOML settings file (layered over the defaults; `BETTER_STORE_*` variables win).
    #[arg(long, global = true, env = "BETTER_STORE_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do (default: serve everything).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Launcher commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the platform: every service in one process, or only some of them.
    Serve {
        /// Serve only these services (repeatable), e.g. `--only catalog`.
        #[arg(long, value_enum)]
        only: Vec<Service>,
    },
    /// Apply database migrations and exit.
    Migrate {
        /// Migrate only these services' databases.
        #[arg(long, value_enum)]
        only: Vec<Service>,
    },
    /// Load the demo store into empty databases and exit.
    Seed,
    /// Write each subgraph's SDL into a folder (default `schema/`).
    Schema {
        /// Output folder.
        #[arg(long, default_value = "schema")]
        out: PathBuf,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref()).context("loading settings")?;
    kernel::telemetry::init(&settings.telemetry);
    match cli.command.unwrap_or(Command::Serve { only: Vec::new() }) {
        Command::Serve { only } => serve(&settings, &only).await,
        Command::Migrate { only } => migrate(&settings, &only).await,
        Command::Seed => {
            let platform = Platform::build(&settings, &[], Listen::Ephemeral).await?;
            let (Some(identity), Some(catalog)) = (&platform.identity, &platform.catalog) else {
                anyhow::bail!("seeding needs both identity and catalog");
            };
            crate::seed::load(identity, catalog, platform.inventory.as_deref()).await?;
            Ok(())
        }
        Command::Schema { out } => crate::sdl::write_all(&out).await,
    }
}

async fn serve(settings: &Settings, only: &[Service]) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let platform = Platform::build(settings, only, Listen::Configured).await?;
    if settings.seed.on_first_start
        && let (Some(identity), Some(catalog)) = (&platform.identity, &platform.catalog)
    {
        crate::seed::load(identity, catalog, platform.inventory.as_deref()).await?;
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "platform ready");
    platform.run(kernel::server::shutdown_signal()).await
}

async fn migrate(settings: &Settings, only: &[Service]) -> anyhow::Result<()> {
    let services = if only.is_empty() { Service::ALL.to_vec() } else { only.to_vec() };
    for service in services {
        let db =
            kernel::db::connect(&settings.database, &settings.data_dir, service.name()).await?;
        match service {
            Service::Catalog => migrations::catalog::Migrator::up(&db, None).await,
            Service::Identity => migrations::identity::Migrator::up(&db, None).await,
            Service::Inventory => migrations::inventory::Migrator::up(&db, None).await,
            Service::Payments => migrations::payments::Migrator::up(&db, None).await,
            Service::Carts => migrations::carts::Migrator::up(&db, None).await,
            Service::Orders => migrations::orders::Migrator::up(&db, None).await,
            Service::Fulfillment => migrations::fulfillment::Migrator::up(&db, None).await,
            Service::Notifications => migrations::notifications::Migrator::up(&db, None).await,
            Service::Rewards => migrations::rewards::Migrator::up(&db, None).await,
            Service::Reporting => migrations::reporting::Migrator::up(&db, None).await,
        }
        .with_context(|| format!("migrating {}", service.name()))?;
        tracing::info!(service = service.name(), "migrated");
    }
    Ok(())
}
