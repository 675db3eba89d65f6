//! Our own copy of the four subgraphs of the public federation gateways benchmark (accounts,
//! inventory, products, reviews), written from their SDLs and data, served on one port with
//! one route each, as the benchmark's reference program does.

use std::sync::Arc;

use async_graphql::{Context, EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Router;
use axum::routing::post;
use serde::Deserialize;

/// The benchmark's data set (`subgraph-data.json`).
#[derive(Debug, Deserialize)]
pub struct Data {
    users: Vec<UserRow>,
    products: Vec<ProductRow>,
    inventory: Vec<InventoryRow>,
    reviews: Vec<ReviewRow>,
}

#[derive(Debug, Deserialize, Clone)]
struct UserRow {
    id: String,
    name: String,
    username: String,
    birthday: i32,
}

#[derive(Debug, Deserialize, Clone)]
struct ProductRow {
    upc: String,
    name: String,
    price: i32,
    weight: i32,
}

#[derive(Debug, Deserialize, Clone)]
struct InventoryRow {
    upc: String,
    #[serde(rename = "inStock")]
    in_stock: bool,
}

#[derive(Debug, Deserialize, Clone)]
struct ReviewRow {
    id: String,
    body: String,
    author_id: String,
    product_upc: String,
}

fn data<'a>(ctx: &Context<'a>) -> &'a Arc<Data> {
    ctx.data_unchecked::<Arc<Data>>()
}

// --- accounts ---------------------------------------------------------------------------

/// An account.
#[derive(SimpleObject)]
struct User {
    id: ID,
    name: Option<String>,
    username: Option<String>,
    birthday: Option<i32>,
}

impl From<&UserRow> for User {
    fn from(u: &UserRow) -> Self {
        Self {
            id: ID(u.id.clone()),
            name: Some(u.name.clone()),
            username: Some(u.username.clone()),
            birthday: Some(u.birthday),
        }
    }
}

struct AccountsQuery;

#[Object(name = "Query")]
impl AccountsQuery {
    async fn me(&self, ctx: &Context<'_>) -> Option<User> {
        data(ctx).users.first().map(User::from)
    }
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Option<User> {
        data(ctx).users.iter().find(|u| u.id == *id).map(User::from)
    }
    async fn users(&self, ctx: &Context<'_>) -> Option<Vec<Option<User>>> {
        Some(data(ctx).users.iter().map(|u| Some(User::from(u))).collect())
    }
    #[graphql(entity)]
    async fn find_user_by_id(&self, ctx: &Context<'_>, id: ID) -> Option<User> {
        data(ctx).users.iter().find(|u| u.id == *id).map(User::from)
    }
}

// --- inventory --------------------------------------------------------------------------

/// Stock facts about a product.
struct InventoryProduct {
    upc: String,
    in_stock: Option<bool>,
}

#[Object(name = "Product")]
impl InventoryProduct {
    async fn upc(&self) -> &str {
        &self.upc
    }
    async fn in_stock(&self) -> Option<bool> {
        self.in_stock
    }
    /// The reference subgraphs answer null here for the benchmark query (see its
    /// `response.json`); matching them keeps the gateways' outputs comparable.
    #[graphql(requires = "price weight")]
    async fn shipping_estimate(&self) -> Option<i32> {
        None
    }
    #[graphql(external)]
    async fn price(&self) -> Option<i32> {
        None
    }
    #[graphql(external)]
    async fn weight(&self) -> Option<i32> {
        None
    }
}

struct InventoryQuery;

#[Object(name = "Query")]
impl InventoryQuery {
    #[graphql(entity)]
    async fn find_product_by_upc(&self, ctx: &Context<'_>, upc: String) -> InventoryProduct {
        let in_stock = data(ctx).inventory.iter().find(|i| i.upc == upc).map(|i| i.in_stock);
        InventoryProduct { upc, in_stock }
    }
}

// --- products ---------------------------------------------------------------------------

/// A product.
#[derive(SimpleObject)]
#[graphql(name = "Product")]
struct CatalogProduct {
    upc: String,
    name: Option<String>,
    price: Option<i32>,
    weight: Option<i32>,
}

impl From<&ProductRow> for CatalogProduct {
    fn from(p: &ProductRow) -> Self {
        Self {
            upc: p.upc.clone(),
            name: Some(p.name.clone()),
            price: Some(p.price),
            weight: Some(p.weight),
        }
    }
}

struct ProductsQuery;

#[Object(name = "Query")]
impl ProductsQuery {
    async fn top_products(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5)] first: i32,
    ) -> Option<Vec<Option<CatalogProduct>>> {
        let n = usize::try_from(first).unwrap_or(0);
        Some(data(ctx).products.iter().take(n).map(|p| Some(CatalogProduct::from(p))).collect())
    }
    #[graphql(entity)]
    async fn find_product_by_upc(&self, ctx: &Context<'_>, upc: String) -> Option<CatalogProduct> {
        data(ctx).products.iter().find(|p| p.upc == upc).map(CatalogProduct::from)
    }
}

// --- reviews ----------------------------------------------------------------------------

/// A review.
struct Review(ReviewRow);

#[Object]
impl Review {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn body(&self) -> Option<&str> {
        Some(&self.0.body)
    }
    async fn product(&self) -> Option<ReviewedProduct> {
        Some(ReviewedProduct { upc: self.0.product_upc.clone() })
    }
    #[graphql(provides = "username")]
    async fn author(&self, ctx: &Context<'_>) -> Option<Author> {
        let username =
            data(ctx).users.iter().find(|u| u.id == self.0.author_id).map(|u| u.username.clone());
        Some(Author { id: self.0.author_id.clone(), username })
    }
}

/// A product as the reviews subgraph knows it.
struct ReviewedProduct {
    upc: String,
}

#[Object(name = "Product")]
impl ReviewedProduct {
    #[graphql(external)]
    async fn upc(&self) -> &str {
        &self.upc
    }
    async fn reviews(&self, ctx: &Context<'_>) -> Option<Vec<Option<Review>>> {
        Some(
            data(ctx)
                .reviews
                .iter()
                .filter(|r| r.product_upc == self.upc)
                .map(|r| Some(Review(r.clone())))
                .collect(),
        )
    }
}

/// A user as the reviews subgraph knows it.
struct Author {
    id: String,
    username: Option<String>,
}

#[Object(name = "User")]
impl Author {
    #[graphql(external)]
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    #[graphql(external)]
    async fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }
    /// The reference subgraph answers every user's reviews with the first two reviews of the
    /// data set (its `response.json` shows it); we answer the same so outputs compare.
    async fn reviews(&self, ctx: &Context<'_>) -> Option<Vec<Option<Review>>> {
        Some(data(ctx).reviews.iter().take(2).map(|r| Some(Review(r.clone()))).collect())
    }
}

struct ReviewsQuery;

#[Object(name = "Query")]
impl ReviewsQuery {
    #[graphql(entity)]
    async fn find_product_by_upc(&self, upc: String) -> ReviewedProduct {
        ReviewedProduct { upc }
    }
    #[graphql(entity)]
    async fn find_user_by_id(&self, ctx: &Context<'_>, id: ID) -> Author {
        let username = data(ctx).users.iter().find(|u| u.id == *id).map(|u| u.username.clone());
        Author { id: id.0, username }
    }
    #[graphql(entity)]
    async fn find_review_by_id(&self, ctx: &Context<'_>, id: ID) -> Option<Review> {
        data(ctx).reviews.iter().find(|r| r.id == *id).map(|r| Review(r.clone()))
    }
}

fn route<Q: async_graphql::ObjectType + 'static>(
    query: Q,
    data: Arc<Data>,
) -> axum::routing::MethodRouter {
    let schema = Schema::build(query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .data(data)
        .finish();
    post(move |request: GraphQLRequest| {
        let schema = schema.clone();
        async move { GraphQLResponse::from(schema.execute(request.into_inner()).await) }
    })
}

/// The four subgraphs at `/accounts`, `/inventory`, `/products` and `/reviews`, and
/// `GET /requests`: how many subgraph requests were served so far (the benchmark reports
/// subgraph requests per gateway request, which in-flight deduplication lowers).
pub fn router(data: Data) -> Router {
    let data = Arc::new(data);
    let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = served.clone();
    Router::new()
        .route("/accounts", route(AccountsQuery, data.clone()))
        .route("/inventory", route(InventoryQuery, data.clone()))
        .route("/products", route(ProductsQuery, data.clone()))
        .route("/reviews", route(ReviewsQuery, data))
        .layer(axum::middleware::from_fn(move |request, next: axum::middleware::Next| {
            served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            next.run(request)
        }))
        .route(
            "/requests",
            axum::routing::get(move || async move {
                count.load(std::sync::atomic::Ordering::Relaxed).to_string()
            }),
        )
}
