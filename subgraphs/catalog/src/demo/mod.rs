//! The demo catalog: a deterministic generator of a believable store (23 leaf categories in a
//! three-level tree, 552 products with prices, images and attributes, and a few thousand
//! reviews by demo customers), and its loader. The same seed gives the same catalog on every
//! machine, so the README's example queries keep working.

use chrono::{DateTime, TimeZone, Utc};
use entities::catalog::{category, product, review};
use kernel::AppResult;
use kernel::demo::DemoRng;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, PaginatorTrait, TransactionTrait};
use uuid::Uuid;

use crate::Catalog;
use crate::domain::{Attribute, Image};

mod data;

use data::{ADJECTIVES, BODIES, BRANDS, COLORS, PER_LEAF, PRAISE, TITLES, TREE};

/// What loading the demo catalog wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSummary {
    /// Categories written.
    pub categories: usize,
    /// Products written.
    pub products: usize,
    /// Reviews written.
    pub reviews: usize,
}

/// The demo catalog, generated in memory.
pub struct DemoCatalog {
    /// Categories, parents before children.
    pub categories: Vec<category::Model>,
    /// Products with their rating totals filled in.
    pub products: Vec<product::Model>,
    /// Reviews.
    pub reviews: Vec<review::Model>,
}

fn at(offset_minutes: i64) -> DateTime<Utc> {
    // 2026-01-01T00:00:00Z plus an offset: fixed, so the demo is the same everywhere.
    Utc.timestamp_opt(1_767_225_600 + offset_minutes * 60, 0).single().unwrap_or_default()
}

fn slugify(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join("-")
}

/// Generates the demo catalog; reviews are written by `reviewers` (at least 12 ids).
pub fn generate(currency: &str, reviewers: &[Uuid]) -> DemoCatalog {
    let mut rng = DemoRng::new("catalog");
    let mut categories = Vec::new();
    let mut products = Vec::new();
    let mut reviews = Vec::new();
    let mut minute = 0i64;
    let mut category_row = |rng: &mut DemoRng, parent: Option<Uuid>, name: &str, position: i32| {
        let row = category::Model {
            id: rng.uuid_v7(1_767_225_600_000),
            parent_id: parent,
            slug: slugify(name),
            name: name.to_string(),
            position,
        };
        categories.push(row.clone());
        row
    };
    for (bi, branch) in TREE.iter().enumerate() {
        let root = category_row(&mut rng, None, branch.name, bi as i32);
        for (gi, (group, leaves)) in branch.groups.iter().enumerate() {
            let mid = category_row(&mut rng, Some(root.id), group, gi as i32);
            for (li, leaf) in leaves.iter().enumerate() {
                let leaf_row = category_row(&mut rng, Some(mid.id), leaf.name, li as i32);
                for n in 0..PER_LEAF {
                    minute += 97;
                    let brand = BRANDS[(n + li) % BRANDS.len()];
                    let adjective = ADJECTIVES[(n * 5 + gi) % ADJECTIVES.len()];
                    let noun = leaf.nouns[n % leaf.nouns.len()];
                    let name = format!("{brand} {adjective} {noun}");
                    let slug = format!("{}-{}", slugify(&name), slugify(leaf.name));
                    let dollars = rng.between(leaf.price.0, leaf.price.1);
                    let cents = *rng.pick(&[0i64, 49, 95, 99]);
                    let price_minor = dollars * 100 + cents;
                    let value = *rng.pick(leaf.attribute.1);
                    let color = *rng.pick(COLORS);
                    let praise = *rng.pick(PRAISE);
                    let description = format!(
                        "The {name} is a {} {} from {brand}, {praise}. {} {} with a {} finish; \
                         {}: {value}. Part of our {} range in {}.",
                        adjective.to_lowercase(),
                        noun.to_lowercase(),
                        if n % 2 == 0 {
                            "Lightweight and practical,"
                        } else {
                            "Sturdy and comfortable,"
                        },
                        "it comes",
                        color.to_lowercase(),
                        leaf.attribute.0,
                        leaf.name.to_lowercase(),
                        branch.name.to_lowercase(),
                    );
                    let created = at(minute);
                    let id = rng.uuid_v7(created.timestamp_millis() as u64);
                    let images = vec![Image {
                        url: format!(
                            "https://placehold.co/800x800/png?text={}",
                            name.replace(' ', "+")
                        ),
                        alt: name.clone(),
                    }];
                    let attributes = vec![
                        Attribute { name: leaf.attribute.0.into(), value: value.into() },
                        Attribute { name: "Brand".into(), value: brand.into() },
                        Attribute { name: "Color".into(), value: color.into() },
                    ];
                    // A hidden quality per product makes its reviews agree with each other.
                    let quality = rng.between(2, 5);
                    let count = rng.below(13) as usize;
                    let mut sum = 0i64;
                    let start = rng.below(reviewers.len() as u64) as usize;
                    for r in 0..count.min(reviewers.len()) {
                        let rating = (quality + rng.between(-1, 1) - i64::from(rng.below(10) == 0))
                            .clamp(1, 5);
                        sum += rating;
                        let when = at(minute + 60 * 24 * (r as i64 + 1));
                        reviews.push(review::Model {
                            id: rng.uuid_v7(when.timestamp_millis() as u64),
                            product_id: id,
                            customer_id: reviewers[(start + r * 7) % reviewers.len()],
                            rating: rating as i32,
                            title: rng.pick(TITLES[rating as usize - 1]).to_string(),
                            body: rng.pick(BODIES[rating as usize - 1]).to_string(),
                            created_at: when,
                        });
                    }
                    products.push(product::Model {
                        id,
                        sku: format!("{}-{:04}", slugify(leaf.name).to_ascii_uppercase(), n + 1),
                        slug,
                        name,
                        description,
                        price_minor,
                        currency: currency.to_string(),
                        category_id: leaf_row.id,
                        images: serde_json::to_value(images).unwrap_or_default(),
                        attributes: serde_json::to_value(attributes).unwrap_or_default(),
                        rating_count: count as i32,
                        rating_sum: sum,
                        active: true,
                        created_at: created,
                        updated_at: created,
                    });
                }
            }
        }
    }
    DemoCatalog { categories, products, reviews }
}

/// Loads the demo catalog into an empty catalog in one transaction; does nothing (and returns
/// `None`) when the catalog already has categories.
pub async fn load(catalog: &Catalog, reviewers: &[Uuid]) -> AppResult<Option<DemoSummary>> {
    if category::Entity::find().count(&catalog.db).await? > 0 {
        return Ok(None);
    }
    let demo = generate(catalog.currency.code(), reviewers);
    let summary = DemoSummary {
        categories: demo.categories.len(),
        products: demo.products.len(),
        reviews: demo.reviews.len(),
    };
    let txn = catalog.db.begin().await?;
    for c in demo.categories {
        category::Entity::insert(c.into_active_model().reset_all())
            .exec_without_returning(&txn)
            .await?;
    }
    for chunk in demo.products.chunks(50) {
        let rows = chunk.iter().cloned().map(|p| p.into_active_model().reset_all());
        product::Entity::insert_many(rows).exec_without_returning(&txn).await?;
    }
    for chunk in demo.reviews.chunks(100) {
        let rows = chunk.iter().cloned().map(|r| r.into_active_model().reset_all());
        review::Entity::insert_many(rows).exec_without_returning(&txn).await?;
    }
    txn.commit().await?;
    tracing::info!(?summary, "loaded the demo catalog");
    Ok(Some(summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_demo_catalog_is_large_deterministic_and_consistent() {
        let reviewers: Vec<Uuid> = (0..60u128).map(|i| Uuid::from_u128(i + 1)).collect();
        let a = generate("USD", &reviewers);
        let b = generate("USD", &reviewers);
        assert!(a.products.len() >= 500, "{} products", a.products.len());
        assert!(a.reviews.len() >= 2000, "{} reviews", a.reviews.len());
        assert_eq!(
            a.products.iter().map(|p| p.id).collect::<Vec<_>>(),
            b.products.iter().map(|p| p.id).collect::<Vec<_>>()
        );
        let slugs: HashSet<_> = a.products.iter().map(|p| &p.slug).collect();
        let skus: HashSet<_> = a.products.iter().map(|p| &p.sku).collect();
        assert_eq!(slugs.len(), a.products.len(), "slugs are unique");
        assert_eq!(skus.len(), a.products.len(), "SKUs are unique");
        let pairs: HashSet<_> = a.reviews.iter().map(|r| (r.product_id, r.customer_id)).collect();
        assert_eq!(pairs.len(), a.reviews.len(), "one review per customer per product");
        for p in &a.products {
            let mine: Vec<_> = a.reviews.iter().filter(|r| r.product_id == p.id).collect();
            assert_eq!(mine.len() as i32, p.rating_count);
            assert_eq!(mine.iter().map(|r| i64::from(r.rating)).sum::<i64>(), p.rating_sum);
        }
        assert!(
            a.categories
                .iter()
                .any(|c| c.parent_id.is_some()
                    && a.categories.iter().any(|d| d.parent_id == Some(c.id))),
            "categories nest at least three deep"
        );
    }
}
