//! The carts' GraphQL schema. Signed-in customers use their own cart (no id needed); guests
//! create a cart and pass its id. Every change answers with the cart as it is now.

use std::sync::Arc;

use async_graphql::{Context, EmptySubscription, ID, Object, Result, Schema};
use kernel::AppError;
use kernel::auth::authentication;
use kernel::money::MoneyObject;
use uuid::Uuid;

use crate::Carts;
use crate::carts::{self, CartView, LineProblem, LineView};

/// The carts subgraph's schema.
pub type CartsSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema over carts.
pub fn build_schema(carts: Arc<Carts>) -> CartsSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .data(carts)
        .limit_depth(16)
        .finish()
}

fn state<'a>(ctx: &Context<'a>) -> &'a Arc<Carts> {
    ctx.data_unchecked::<Arc<Carts>>()
}

fn parse(id: &ID, what: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id.trim())
        .map_err(|_| AppError::bad_input(format!("`{what}` is not a valid id")))
}

/// The cart to act on: the one named (guest carts, or one's own), else the signed-in
/// customer's.
async fn target(ctx: &Context<'_>, cart_id: Option<&ID>) -> Result<entities::carts::cart::Model> {
    let carts = state(ctx);
    let caller = authentication(ctx).caller()?;
    Ok(match (cart_id, caller) {
        (Some(id), caller) => carts::find(carts, parse(id, "cartId")?, caller).await?,
        (None, Some(caller)) => carts::of_customer(carts, caller.customer_id).await?,
        (None, None) => {
            return Err(AppError::bad_input("give `cartId`, or sign in to use your cart").into());
        }
    })
}

/// The id of the cart to change and who changes it, without reading the cart: a guest cart
/// (or one's own) named by id, else the signed-in customer's. The change itself checks access.
async fn target_id<'a>(
    ctx: &Context<'a>,
    cart_id: Option<&ID>,
) -> Result<(Uuid, Option<&'a kernel::auth::Caller>)> {
    let caller = authentication(ctx).caller()?;
    Ok(match (cart_id, caller) {
        (Some(id), caller) => (parse(id, "cartId")?, caller),
        (None, Some(caller)) => {
            (carts::of_customer(state(ctx), caller.customer_id).await?.id, Some(caller))
        }
        (None, None) => {
            return Err(AppError::bad_input("give `cartId`, or sign in to use your cart").into());
        }
    })
}

impl From<entities::carts::cart::Model> for Cart {
    fn from(row: entities::carts::cart::Model) -> Self {
        Cart { row, priced: tokio::sync::OnceCell::new() }
    }
}

/// A cart. It is priced (its lines read, the catalog and inventory asked) only when a field
/// that needs prices is selected, once per answer: a storefront that only wants the id back
/// from `addToCart` costs no pricing.
pub struct Cart {
    row: entities::carts::cart::Model,
    priced: tokio::sync::OnceCell<CartView>,
}

impl Cart {
    async fn priced(&self, ctx: &Context<'_>) -> Result<&CartView> {
        Ok(self.priced.get_or_try_init(|| carts::view(state(ctx), &self.row)).await?)
    }
}

#[Object]
impl Cart {
    /// The cart id (a guest keeps it to come back to the cart).
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// Lines, in the order they were first added.
    async fn lines(&self, ctx: &Context<'_>) -> Result<Vec<CartLine>> {
        Ok(self.priced(ctx).await?.lines.iter().cloned().map(CartLine).collect())
    }

    /// Units in the cart.
    async fn item_count(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(self.priced(ctx).await?.lines.iter().map(|l| l.quantity).sum())
    }

    /// The sum of the lines that can be bought as they are, at current prices; `null` when
    /// prices cannot be read just now.
    async fn subtotal(&self, ctx: &Context<'_>) -> Result<Option<MoneyObject>> {
        Ok(self.priced(ctx).await?.subtotal.map(MoneyObject::from))
    }

    /// True when every line can be bought as it is (and there is at least one).
    async fn ready_for_checkout(&self, ctx: &Context<'_>) -> Result<bool> {
        let view = self.priced(ctx).await?;
        Ok(!view.lines.is_empty() && view.lines.iter().all(|l| l.problem.is_none()))
    }

    /// Last change (the cart expires after a while idle).
    async fn updated_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.row.updated_at
    }
}

/// A line of a cart.
pub struct CartLine(LineView);

#[Object]
impl CartLine {
    /// The product (its other fields come from the catalog and the inventory).
    async fn product(&self) -> Product {
        Product { id: self.0.product_id }
    }

    /// Units asked for.
    async fn quantity(&self) -> i32 {
        self.0.quantity
    }

    /// The product's current price.
    async fn unit_price(&self) -> Option<MoneyObject> {
        self.0.unit_price.map(MoneyObject::from)
    }

    /// Price times quantity.
    async fn line_total(&self) -> Option<MoneyObject> {
        self.0.line_total.map(MoneyObject::from)
    }

    /// What stands in the way of buying this line as it is, if anything.
    async fn problem(&self) -> Option<LineProblem> {
        self.0.problem
    }
}

/// A catalog product, referenced.
pub struct Product {
    id: Uuid,
}

#[Object]
impl Product {
    /// The product id.
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }
}

/// Carts queries.
pub struct Query;

#[Object]
impl Query {
    /// A cart: the one named by `id`, or (signed in, no id) your own.
    async fn cart(&self, ctx: &Context<'_>, id: Option<ID>) -> Result<Cart> {
        let cart = target(ctx, id.as_ref()).await?;
        Ok(cart.into())
    }

    /// Resolves `Product` references (carts know only the id).
    #[graphql(entity)]
    async fn find_product_by_id(&self, id: ID) -> Option<Product> {
        Uuid::parse_str(id.trim()).ok().map(|id| Product { id })
    }
}

/// Carts changes.
pub struct Mutation;

#[Object]
impl Mutation {
    /// A new, empty cart for a guest. Keep its id: it is the only way back to the cart.
    async fn create_cart(&self, ctx: &Context<'_>) -> Result<Cart> {
        let cart = carts::create_guest(state(ctx)).await?;
        Ok(cart.into())
    }

    /// Adds units of a product (summed with those already in the cart).
    async fn add_to_cart(
        &self,
        ctx: &Context<'_>,
        cart_id: Option<ID>,
        product_id: ID,
        quantity: i32,
    ) -> Result<Cart> {
        let (cart, caller) = target_id(ctx, cart_id.as_ref()).await?;
        let product = parse(&product_id, "productId")?;
        Ok(carts::add(state(ctx), cart, caller, product, quantity).await?.into())
    }

    /// Sets the units of a product already in the cart.
    async fn set_cart_quantity(
        &self,
        ctx: &Context<'_>,
        cart_id: Option<ID>,
        product_id: ID,
        quantity: i32,
    ) -> Result<Cart> {
        let (cart, caller) = target_id(ctx, cart_id.as_ref()).await?;
        let product = parse(&product_id, "productId")?;
        Ok(carts::set_quantity(state(ctx), cart, caller, product, quantity).await?.into())
    }

    /// Removes a product from the cart.
    async fn remove_from_cart(
        &self,
        ctx: &Context<'_>,
        cart_id: Option<ID>,
        product_id: ID,
    ) -> Result<Cart> {
        let (cart, caller) = target_id(ctx, cart_id.as_ref()).await?;
        let product = parse(&product_id, "productId")?;
        Ok(carts::remove(state(ctx), cart, caller, product).await?.into())
    }

    /// After signing in: moves the guest cart's lines into your cart (quantities summed,
    /// within the limits) and deletes the guest cart.
    async fn merge_cart(&self, ctx: &Context<'_>, guest_cart_id: ID) -> Result<Cart> {
        let caller = authentication(ctx).require()?;
        let merged =
            carts::merge(state(ctx), parse(&guest_cart_id, "guestCartId")?, caller).await?;
        Ok(merged.into())
    }
}
