//! Each subgraph's SDL, exactly as it serves it from `_service { sdl }`, for `schema/`.

use std::path::Path;

use anyhow::Context as _;
use kernel::events::bus::InProcessBus;
use kernel::events::outbox::OutboxRelay;
use sea_orm::DatabaseConnection;

use crate::platform::Service;

/// The SDL `service` serves (built without a database: SDL does not need one).
pub async fn subgraph_sdl(service: Service) -> anyhow::Result<String> {
    let db = DatabaseConnection::default();
    let relay = OutboxRelay::new(db.clone(), std::sync::Arc::new(InProcessBus::default()));
    let response = match service {
        Service::Catalog => {
            let state = catalog::Catalog::new(db, kernel::money::Currency::USD, relay);
            catalog::build_schema(state).execute("{ _service { sdl } }").await
        }
        Service::Identity => {
            let settings = kernel::config::Settings::default();
            let keys = kernel::auth::KeyPair::generate();
            let state = identity::Identity::new(db, keys, &settings, relay);
            identity::build_schema(state).execute("{ _service { sdl } }").await
        }
        Service::Inventory => {
            let ttl = std::time::Duration::from_secs(900);
            let state = inventory::Inventory::new(db, relay, ttl);
            inventory::build_schema(state).execute("{ _service { sdl } }").await
        }
        Service::Payments => {
            let state = payments::Payments::new(db, relay);
            payments::build_schema(state).execute("{ _service { sdl } }").await
        }
        Service::Carts => {
            let idle = std::time::Duration::from_secs(3600);
            let currency = kernel::money::Currency::USD;
            let state = carts::Carts::new(db, "http://invalid", "http://invalid", idle, currency);
            carts::build_schema(state).execute("{ _service { sdl } }").await
        }
        Service::Orders => {
            let nowhere = kernel::http_client::Endpoint::from("http://invalid");
            let upstream = orders::Upstream {
                carts: nowhere.clone(),
                catalog: nowhere.clone(),
                rewards: nowhere,
            };
            let feed = orders::feed::StatusFeed::in_process();
            let state = orders::Orders::new(db, relay, &upstream, feed);
            orders::build_schema(state).execute("{ _service { sdl } }").await
        }
        Service::Fulfillment => {
            let step = std::time::Duration::from_secs(10);
            let state = fulfillment::Fulfillment::new(db, relay, "Better Parcel", step);
            fulfillment::build_schema(state).execute("{ _service { sdl } }").await
        }
        Service::Notifications => {
            let folder = std::path::PathBuf::from("mail");
            let transport = notifications::transport::Transport::new(None, folder)?;
            let options = notifications::SenderOptions {
                from: "Better Store <orders@betterstore.dev>".into(),
                max_attempts: 1,
                retry_base: std::time::Duration::from_secs(1),
            };
            let state =
                notifications::Notifications::new(db, relay, transport, "http://invalid", options);
            notifications::build_schema(state).execute("{ _service { sdl } }").await
        }
        Service::Rewards => {
            let state = rewards::Rewards::new(db, relay, rewards::Policy::default());
            let currency = kernel::money::Currency::USD;
            rewards::build_schema(state, currency).execute("{ _service { sdl } }").await
        }
        Service::Reporting => {
            let state = reporting::Reporting::new(db, relay, kernel::money::Currency::USD);
            reporting::build_schema(state).execute("{ _service { sdl } }").await
        }
    };
    anyhow::ensure!(response.errors.is_empty(), "SDL query failed: {:?}", response.errors);
    let json = response.data.into_json().context("SDL response")?;
    let sdl = json["_service"]["sdl"].as_str().context("SDL missing from the response")?;
    Ok(format!("{}\n", sdl.trim_end()))
}

/// The supergraph composed from every subgraph's SDL, with the subgraphs at their default
/// addresses (`http://127.0.0.1:4001/graphql`, …): what `schema/supergraph.graphql` holds,
/// and what any Federation v2 gateway can serve in front of a default `serve`.
pub async fn supergraph_sdl() -> anyhow::Result<String> {
    let defaults = kernel::config::ServerSettings::default();
    let mut subgraphs = Vec::new();
    for (i, service) in Service::ALL.into_iter().enumerate() {
        subgraphs.push(gateway::compose::SubgraphSdl {
            name: service.name().to_string(),
            url: format!(
                "http://{}:{}/graphql",
                defaults.host,
                defaults.first_subgraph_port + i as u16
            ),
            sdl: subgraph_sdl(service).await?,
        });
    }
    Ok(gateway::compose::compose(&subgraphs)?)
}

/// Writes `<dir>/<service>.graphql` for every subgraph, and `<dir>/supergraph.graphql`.
pub async fn write_all(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files = Vec::new();
    for service in Service::ALL {
        files.push((format!("{}.graphql", service.name()), subgraph_sdl(service).await?));
    }
    files.push(("supergraph.graphql".to_string(), supergraph_sdl().await?));
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
