//! `products(search, filter, sort, first, after)`: one page of products, with the total and
//! facet counts computed only when the client asks for them.
//!
//! Facets follow the usual storefront rule: each dimension's counts apply every other active
//! filter but not its own, so a shopper filtered to one price band still sees what the other
//! bands hold.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Enum, InputObject, Object, Result, SimpleObject};
use entities::catalog::{category, product};
use kernel::connection::PageRequest;
use kernel::money::{Money, MoneyObject};
use kernel::{AppError, AppResult};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, ExprTrait, Order};
use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use uuid::Uuid;

use crate::Catalog;
use crate::categories::{self, Category};
use crate::products::Product;
use crate::search::{self, SearchTerms};

/// Narrows a product listing.
#[derive(InputObject, Default)]
pub struct ProductFilter {
    /// Slug of a category; its sub-categories are included.
    pub category: Option<String>,
    /// Lowest price, inclusive, in the catalog currency.
    pub min_price: Option<Decimal>,
    /// Highest price, inclusive, in the catalog currency.
    pub max_price: Option<Decimal>,
    /// Only products whose average rating is at least this many stars (1–5).
    pub min_rating: Option<i32>,
}

/// Orders a product listing.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProductSort {
    /// Best search match first (the default with `search`; without it, same as NEWEST).
    Relevance,
    /// Most recently added first (the default without `search`).
    Newest,
    /// Cheapest first.
    PriceAsc,
    /// Most expensive first.
    PriceDesc,
    /// Highest average rating first.
    Rating,
    /// Alphabetical by name.
    Name,
}

/// A filter dimension that has facet counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dimension {
    Category,
    Price,
    Rating,
}

/// A parsed, valid listing request.
#[derive(Clone)]
pub struct ListingQuery {
    search: Option<SearchTerms>,
    categories: Option<Vec<Uuid>>,
    min_price: Option<i64>,
    max_price: Option<i64>,
    min_rating: Option<i32>,
    sort: ProductSort,
}

impl ListingQuery {
    /// Parses the client's arguments.
    pub async fn parse(
        catalog: &Catalog,
        search: Option<&str>,
        filter: ProductFilter,
        sort: Option<ProductSort>,
    ) -> AppResult<Self> {
        let search = match search {
            Some(text) => SearchTerms::parse(text)?,
            None => None,
        };
        let price = |field: &str, amount: Option<Decimal>| -> AppResult<Option<i64>> {
            let Some(amount) = amount else { return Ok(None) };
            let money = Money::non_negative(amount, catalog.currency)
                .map_err(|e| AppError::bad_input(format!("`{field}`: {e}")))?;
            Ok(Some(money.minor_units()?))
        };
        let min_price = price("minPrice", filter.min_price)?;
        let max_price = price("maxPrice", filter.max_price)?;
        if let (Some(min), Some(max)) = (min_price, max_price)
            && min > max
        {
            return Err(AppError::bad_input("`minPrice` is above `maxPrice`"));
        }
        if let Some(r) = filter.min_rating
            && !(1..=5).contains(&r)
        {
            return Err(AppError::bad_input("`minRating` must be between 1 and 5"));
        }
        let categories = match filter.category {
            None => None,
            Some(slug) => {
                let all = categories::all(&catalog.db).await?;
                // An unknown category lists nothing, like a lookup of a missing product.
                Some(match all.iter().find(|c| c.slug == slug.trim()) {
                    Some(root) => categories::subtree(&all, root.id),
                    None => Vec::new(),
                })
            }
        };
        let sort = match (sort, &search) {
            (Some(ProductSort::Relevance) | None, Some(_)) => ProductSort::Relevance,
            (Some(ProductSort::Relevance) | None, None) => ProductSort::Newest,
            (Some(s), _) => s,
        };
        Ok(Self { search, categories, min_price, max_price, min_rating: filter.min_rating, sort })
    }

    /// The products matching every filter except `skip`'s; ranked when sorting by relevance.
    fn select(
        &self,
        backend: sea_orm::DbBackend,
        skip: Option<Dimension>,
        rank: bool,
    ) -> Select<product::Entity> {
        // Listings and search show what is on sale.
        let mut select = product::Entity::find().filter(product::Column::Active.eq(true));
        if let Some(terms) = &self.search {
            if terms.is_empty() {
                select = select.filter(Expr::cust("1 = 0"));
            } else {
                select = search::apply(select, backend, terms, rank);
            }
        }
        if skip != Some(Dimension::Category)
            && let Some(ids) = &self.categories
        {
            select = select.filter(product::Column::CategoryId.is_in(ids.iter().copied()));
        }
        if skip != Some(Dimension::Price) {
            if let Some(min) = self.min_price {
                select = select.filter(product::Column::PriceMinor.gte(min));
            }
            if let Some(max) = self.max_price {
                select = select.filter(product::Column::PriceMinor.lte(max));
            }
        }
        if skip != Some(Dimension::Rating)
            && let Some(stars) = self.min_rating
        {
            select = select.filter(product::Column::RatingCount.gt(0)).filter(
                Expr::col(product::Column::RatingSum)
                    .gte(Expr::col(product::Column::RatingCount).mul(i64::from(stars))),
            );
        }
        select
    }

    fn ordered(&self, backend: sea_orm::DbBackend) -> Select<product::Entity> {
        let select = self.select(backend, None, self.sort == ProductSort::Relevance);
        let average = Expr::cust(
            "CASE WHEN \"products\".\"rating_count\" = 0 THEN 0 \
             ELSE \"products\".\"rating_sum\" * 1.0 / \"products\".\"rating_count\" END",
        );
        let select = match self.sort {
            ProductSort::Relevance => select,
            ProductSort::Newest => select.order_by_desc(product::Column::CreatedAt),
            ProductSort::PriceAsc => select.order_by_asc(product::Column::PriceMinor),
            ProductSort::PriceDesc => select.order_by_desc(product::Column::PriceMinor),
            ProductSort::Rating => {
                select.order_by(average, Order::Desc).order_by_desc(product::Column::RatingCount)
            }
            ProductSort::Name => select.order_by_asc(product::Column::Name),
        };
        // The id breaks ties so that pages never overlap or skip.
        select.order_by_asc(product::Column::Id)
    }
}

/// Totals and facets of a listing, computed when selected.
pub struct ListingExtras {
    catalog: Arc<Catalog>,
    query: Arc<ListingQuery>,
}

/// A facet count for one category (its sub-categories included).
#[derive(SimpleObject)]
pub struct CategoryFacet {
    /// The category.
    pub category: Category,
    /// Matching products in it or below it.
    pub count: i64,
}

/// A facet count for one price band.
#[derive(SimpleObject)]
pub struct PriceBandFacet {
    /// Lowest price in the band, inclusive.
    pub min: MoneyObject,
    /// Highest price, exclusive; `null` for the top band.
    pub max: Option<MoneyObject>,
    /// Matching products in the band.
    pub count: i64,
}

/// A facet count for "N stars and up".
#[derive(SimpleObject)]
pub struct RatingFacet {
    /// The lowest average rating counted.
    pub min_rating: i32,
    /// Matching products rated at least that.
    pub count: i64,
}

/// Facet counts of a listing.
#[derive(SimpleObject)]
pub struct ProductFacets {
    /// Counts per category, in tree order (parents before children), non-zero only.
    pub categories: Vec<CategoryFacet>,
    /// Counts per price band, cheapest first.
    pub price_bands: Vec<PriceBandFacet>,
    /// Counts for 4, 3, 2 and 1 stars and up.
    pub ratings: Vec<RatingFacet>,
}

/// Price band edges in whole currency units.
const PRICE_BANDS: [i64; 6] = [0, 25, 50, 100, 250, 500];

#[Object]
impl ListingExtras {
    /// Number of matching products in all pages.
    async fn total_count(&self) -> Result<i64> {
        let db = &self.catalog.db;
        let count = self.query.select(db.get_database_backend(), None, false).count(db).await;
        Ok(count.map_err(AppError::from)? as i64)
    }

    /// Counts per category, price band and rating, for filter menus.
    async fn facets(&self) -> Result<ProductFacets> {
        Ok(self.compute_facets().await?)
    }
}

impl ListingExtras {
    async fn compute_facets(&self) -> AppResult<ProductFacets> {
        let db = &self.catalog.db;
        // One query over the search matches; each dimension then applies the other filters.
        let base = ListingQuery {
            categories: None,
            min_price: None,
            max_price: None,
            min_rating: None,
            ..ListingQuery::clone(&self.query)
        };
        let rows: Vec<(Uuid, i64, i32, i64)> = base
            .select(db.get_database_backend(), None, false)
            .select_only()
            .column(product::Column::CategoryId)
            .column(product::Column::PriceMinor)
            .column(product::Column::RatingCount)
            .column(product::Column::RatingSum)
            .into_tuple()
            .all(db)
            .await?;
        let q = &self.query;
        let passes = |row: &(Uuid, i64, i32, i64), skip: Dimension| {
            let (category, price, count, sum) = *row;
            (skip == Dimension::Category
                || q.categories.as_ref().is_none_or(|ids| ids.contains(&category)))
                && (skip == Dimension::Price
                    || (q.min_price.is_none_or(|m| price >= m)
                        && q.max_price.is_none_or(|m| price <= m)))
                && (skip == Dimension::Rating
                    || q.min_rating
                        .is_none_or(|r| count > 0 && sum >= i64::from(r) * i64::from(count)))
        };

        let all = categories::all(db).await?;
        let mut per_category: HashMap<Uuid, i64> = HashMap::new();
        for row in rows.iter().filter(|r| passes(r, Dimension::Category)) {
            for id in categories::ancestors(&all, row.0) {
                *per_category.entry(id).or_default() += 1;
            }
        }
        let categories = tree_order(&all)
            .into_iter()
            .filter_map(|c| {
                let count = per_category.get(&c.id).copied().unwrap_or(0);
                (count > 0).then(|| CategoryFacet { category: Category(c.clone()), count })
            })
            .collect();

        let currency = self.catalog.currency;
        let unit = 10i64.pow(u32::from(currency.minor_digits()));
        let price_rows: Vec<i64> =
            rows.iter().filter(|r| passes(r, Dimension::Price)).map(|r| r.1).collect();
        let price_bands = PRICE_BANDS
            .iter()
            .enumerate()
            .map(|(i, &low)| {
                let high = PRICE_BANDS.get(i + 1).copied();
                let count = price_rows
                    .iter()
                    .filter(|&&p| p >= low * unit && high.is_none_or(|h| p < h * unit))
                    .count() as i64;
                PriceBandFacet {
                    min: Money::from_minor(low * unit, currency).into(),
                    max: high.map(|h| Money::from_minor(h * unit, currency).into()),
                    count,
                }
            })
            .collect();

        let rating_rows: Vec<_> = rows.iter().filter(|r| passes(r, Dimension::Rating)).collect();
        let ratings = (1..=4)
            .rev()
            .map(|stars: i32| RatingFacet {
                min_rating: stars,
                count: rating_rows
                    .iter()
                    .filter(|r| r.2 > 0 && r.3 >= i64::from(stars) * i64::from(r.2))
                    .count() as i64,
            })
            .collect();
        Ok(ProductFacets { categories, price_bands, ratings })
    }
}

/// Categories depth-first, siblings in display order.
fn tree_order(all: &[category::Model]) -> Vec<&category::Model> {
    fn visit<'a>(
        all: &'a [category::Model],
        parent: Option<Uuid>,
        out: &mut Vec<&'a category::Model>,
    ) {
        for c in all.iter().filter(|c| c.parent_id == parent) {
            out.push(c);
            visit(all, Some(c.id), out);
        }
    }
    let mut out = Vec::with_capacity(all.len());
    visit(all, None, &mut out);
    out
}

/// The `ProductConnection` type.
pub type ProductConnection = Connection<String, Product, ListingExtras, EmptyFields>;

/// Runs a listing: one page of products, with lazily computed totals and facets.
#[tracing::instrument(skip_all, fields(first = ?first, after = ?after))]
pub async fn list(
    catalog: &Arc<Catalog>,
    query: ListingQuery,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<ProductConnection> {
    let page = PageRequest::parse(first, after)?;
    let db = &catalog.db;
    // One extra row tells whether another page follows, without counting.
    let mut rows = query
        .ordered(db.get_database_backend())
        .offset(page.offset)
        .limit(page.limit + 1)
        .all(db)
        .await?;
    let has_next = rows.len() as u64 > page.limit;
    rows.truncate(page.limit as usize);
    let extras = ListingExtras { catalog: catalog.clone(), query: Arc::new(query) };
    let mut connection = Connection::with_additional_fields(page.offset > 0, has_next, extras);
    connection.edges.extend(
        rows.into_iter().enumerate().map(|(i, p)| Edge::new(page.cursor_at(i), Product(p))),
    );
    Ok(connection)
}
