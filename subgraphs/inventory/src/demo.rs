//! Demo stock for the demo catalog: deterministic counts, a few products sold out.

use chrono::Utc;
use entities::inventory::stock;
use kernel::AppResult;
use kernel::demo::DemoRng;
use sea_orm::{ActiveValue::Set, EntityTrait, PaginatorTrait};
use uuid::Uuid;

use crate::Inventory;

/// Gives each of `products` a stock count, unless the inventory has stock already; returns
/// how many products were stocked.
pub async fn load(inventory: &Inventory, products: &[Uuid]) -> AppResult<Option<usize>> {
    if stock::Entity::find().count(&inventory.db).await? > 0 {
        return Ok(None);
    }
    let mut rng = DemoRng::new("inventory");
    let now = Utc::now();
    let rows: Vec<stock::ActiveModel> = products
        .iter()
        .map(|id| {
            // About one product in twelve is sold out; the rest have 1 to 60 units.
            let on_hand = if rng.below(12) == 0 { 0 } else { rng.between(1, 60) };
            stock::ActiveModel {
                product_id: Set(*id),
                on_hand: Set(on_hand),
                reserved: Set(0),
                updated_at: Set(now),
            }
        })
        .collect();
    let count = rows.len();
    for chunk in rows.chunks(200) {
        stock::Entity::insert_many(chunk.to_vec()).exec_without_returning(&inventory.db).await?;
    }
    Ok(Some(count))
}
