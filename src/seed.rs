//! The demo store: demo accounts in identity, then the demo catalog whose reviews those
//! accounts wrote, then stock for every catalog product. Each part loads only into an empty
//! context, so seeding twice is harmless.

use catalog::Catalog;
use identity::Identity;

/// Number of demo reviewer accounts.
pub const REVIEWERS: usize = 60;

/// Loads the demo store; returns whether anything was written.
pub async fn load(
    identity: &Identity,
    catalog: &Catalog,
    inventory: Option<&inventory::Inventory>,
) -> anyhow::Result<bool> {
    let accounts = identity::demo::accounts(REVIEWERS);
    let wrote_accounts = identity::demo::load(identity, &accounts)
        .await
        .map_err(|e| anyhow::anyhow!("loading demo accounts: {e:?}"))?;
    // Reviews are written by the reviewer accounts (the first two are admin and shopper).
    let reviewers: Vec<_> = accounts.iter().skip(2).map(|a| a.id).collect();
    let summary = catalog::demo::load(catalog, &reviewers)
        .await
        .map_err(|e| anyhow::anyhow!("loading the demo catalog: {e:?}"))?;
    if let Some(summary) = summary {
        tracing::info!(
            categories = summary.categories,
            products = summary.products,
            reviews = summary.reviews,
            "demo store loaded"
        );
    }
    let mut stocked = false;
    if let Some(inventory) = inventory {
        use sea_orm::{EntityTrait, QueryOrder, QuerySelect};
        let products: Vec<uuid::Uuid> = entities::catalog::product::Entity::find()
            .select_only()
            .column(entities::catalog::product::Column::Id)
            .order_by_asc(entities::catalog::product::Column::Id)
            .into_tuple()
            .all(&catalog.db)
            .await?;
        if let Some(count) = inventory::demo::load(inventory, &products)
            .await
            .map_err(|e| anyhow::anyhow!("loading demo stock: {e:?}"))?
        {
            tracing::info!(products = count, "demo stock loaded");
            stocked = true;
        }
    }
    Ok(wrote_accounts || summary.is_some() || stocked)
}
