//! The orders' GraphQL schema: `placeOrder`, `cancelOrder`, `order`, `myOrders`,
//! `Customer.orders` through federation, and the live subscriptions `orderStatusChanged` and
//! `myOrderUpdates` (fed by [`crate::feed`]).

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{
    Context, ErrorExtensions, ID, InputObject, Object, Result, Schema, SimpleObject, Subscription,
};
use entities::orders::order;
use kernel::AppError;
use kernel::auth::authentication;
use kernel::connection::{PageRequest, has_next_page};
use kernel::money::{Currency, Money, MoneyObject};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::Orders;
use crate::checkout::{self, Placement};
use crate::domain::{self, Address, Status};
use crate::feed::{FeedItem, StatusChange, Topic};

/// The orders subgraph's schema.
pub type OrdersSchema = Schema<Query, Mutation, OrderSubscription>;

/// Builds the schema over orders.
pub fn build_schema(orders: Arc<Orders>) -> OrdersSchema {
    Schema::build(Query, Mutation, OrderSubscription)
        .enable_federation()
        .enable_subscription_in_federation()
        .data(orders)
        .limit_depth(16)
        .finish()
}

fn state<'a>(ctx: &Context<'a>) -> &'a Arc<Orders> {
    ctx.data_unchecked::<Arc<Orders>>()
}

fn parse(id: &ID, what: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id.trim())
        .map_err(|_| AppError::bad_input(format!("`{what}` is not a valid id")))
}

fn money(minor: i64, currency: &str) -> Result<MoneyObject> {
    let currency = Currency::parse(currency).map_err(AppError::from)?;
    Ok(Money::from_minor(minor, currency).into())
}

/// A shipping address.
#[derive(InputObject)]
pub struct AddressInput {
    /// Recipient.
    name: String,
    /// Street and number.
    line1: String,
    /// Flat, floor, building.
    line2: Option<String>,
    /// City.
    city: String,
    /// Postal code.
    postal_code: String,
    /// Two-letter country code, such as `FR`.
    country: String,
}

/// What to order.
#[derive(InputObject)]
pub struct PlaceOrderInput {
    /// The cart to buy: a guest's cart id; signed in, leave it out to buy your own cart.
    cart_id: Option<ID>,
    /// The card to charge (from `tokenizeCard`).
    payment_method_id: ID,
    /// Where it goes.
    shipping_address: AddressInput,
    /// A key the client makes up once per checkout and sends again on retries: the same key
    /// returns the same order and never charges twice.
    idempotency_key: String,
    /// Loyalty points to redeem for a discount (signed in; at most your balance; the card
    /// still pays part of the order).
    redeem_points: Option<i32>,
    /// A guest's e-mail address, for the order confirmation and the shipping notice (left
    /// out, a guest gets no mail). Signed in, leave it out: mails go to your account's address.
    email: Option<String>,
}

/// One step of an order's history.
#[derive(SimpleObject)]
pub struct TimelineEntry {
    /// The status entered.
    status: Status,
    /// Why (for a cancellation: `OUT_OF_STOCK`, `PAYMENT_DECLINED`, `CUSTOMER_CANCELLED`,
    /// `RESERVATION_EXPIRED`).
    reason: Option<String>,
    /// When.
    at: chrono::DateTime<chrono::Utc>,
}

/// A product bought, at the price it had when the order was placed.
pub struct OrderLine(entities::orders::line::Model, String);

#[Object]
impl OrderLine {
    /// The product.
    async fn product(&self) -> Product {
        Product { id: self.0.product_id }
    }
    /// Its name when ordered.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Units.
    async fn quantity(&self) -> i32 {
        self.0.quantity
    }
    /// Unit price when ordered.
    async fn unit_price(&self) -> Result<MoneyObject> {
        money(self.0.unit_price_minor, &self.1)
    }
    /// Unit price times units.
    async fn line_total(&self) -> Result<MoneyObject> {
        money(self.0.line_total_minor, &self.1)
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

/// An order.
pub struct Order(order::Model);

#[Object]
impl Order {
    /// Order id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The number to quote to customer service, such as `BS-7K3F9Q2M`.
    async fn number(&self) -> &str {
        &self.0.number
    }
    /// Where it stands.
    async fn status(&self) -> Result<Status> {
        Ok(Status::parse(&self.0.status)?)
    }
    /// Why it was cancelled.
    async fn cancel_reason(&self) -> Option<&str> {
        self.0.cancel_reason.as_deref()
    }
    /// What was bought.
    async fn lines(&self, ctx: &Context<'_>) -> Result<Vec<OrderLine>> {
        let lines = checkout::lines(&state(ctx).db, self.0.id).await?;
        Ok(lines.into_iter().map(|l| OrderLine(l, self.0.currency.clone())).collect())
    }
    /// Sum of the lines.
    async fn subtotal(&self) -> Result<MoneyObject> {
        money(self.0.subtotal_minor, &self.0.currency)
    }
    /// Taken off by redeemed loyalty points.
    async fn discount(&self) -> Result<MoneyObject> {
        money(self.0.discount_minor, &self.0.currency)
    }
    /// Loyalty points redeemed for the discount.
    async fn points_redeemed(&self) -> i32 {
        i32::try_from(self.0.points_redeemed).unwrap_or(i32::MAX)
    }
    /// What the customer pays: the subtotal less the discount.
    async fn total(&self) -> Result<MoneyObject> {
        money(self.0.total_minor, &self.0.currency)
    }
    /// Where it goes.
    async fn shipping_address(&self) -> Result<Address> {
        Ok(serde_json::from_value(self.0.shipping_address.clone()).map_err(AppError::internal)?)
    }
    /// The e-mail a guest gave for this order's mails (`null` for a customer's order: its
    /// mails go to the account's address).
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    /// Every status it took, oldest first.
    async fn timeline(&self, ctx: &Context<'_>) -> Result<Vec<TimelineEntry>> {
        let entries = checkout::history(&state(ctx).db, self.0.id).await?;
        entries
            .into_iter()
            .map(|e| {
                Ok(TimelineEntry { status: Status::parse(&e.status)?, reason: e.reason, at: e.at })
            })
            .collect()
    }
    /// When it was placed.
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.created_at
    }
}

/// Extra fields of a page of orders.
#[derive(SimpleObject)]
pub struct OrderConnectionFields {
    /// Orders in all pages.
    total_count: i64,
}

/// A page of orders.
type OrderPage = Connection<String, Order, OrderConnectionFields, EmptyFields>;

/// A customer, as far as orders go.
pub struct Customer {
    id: Uuid,
}

async fn orders_of(
    ctx: &Context<'_>,
    customer: Uuid,
    first: Option<i32>,
    after: Option<String>,
) -> Result<OrderPage> {
    let caller = authentication(ctx).require()?;
    if !caller.speaks_for(customer) {
        return Err(AppError::Forbidden("these orders are not yours".into()).into());
    }
    let page = PageRequest::parse(first, after.as_deref())?;
    let db = &state(ctx).db;
    let query = order::Entity::find().filter(order::Column::CustomerId.eq(customer));
    let total = query.clone().count(db).await.map_err(AppError::from)?;
    let rows = query
        .order_by_desc(order::Column::CreatedAt)
        .order_by_desc(order::Column::Id)
        .offset(page.offset)
        .limit(page.limit)
        .all(db)
        .await
        .map_err(AppError::from)?;
    let mut connection = Connection::with_additional_fields(
        page.offset > 0,
        has_next_page(&page, rows.len(), total),
        OrderConnectionFields { total_count: total as i64 },
    );
    connection
        .edges
        .extend(rows.into_iter().enumerate().map(|(i, r)| Edge::new(page.cursor_at(i), Order(r))));
    Ok(connection)
}

#[Object]
impl Customer {
    /// The customer id.
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }
    /// The customer's orders, newest first (the customer and administrators only).
    async fn orders(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<OrderPage> {
        orders_of(ctx, self.id, first, after).await
    }
}

/// Orders queries.
pub struct Query;

#[Object]
impl Query {
    /// One order: yours (or, for a guest order, anyone's who has its id).
    async fn order(&self, ctx: &Context<'_>, id: ID) -> Result<Order> {
        let caller = authentication(ctx).caller()?;
        Ok(Order(checkout::find(state(ctx), parse(&id, "id")?, caller).await?))
    }

    /// The signed-in customer's orders, newest first.
    async fn my_orders(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<OrderPage> {
        let caller = authentication(ctx).require()?;
        orders_of(ctx, caller.customer_id, first, after).await
    }

    /// Resolves `Order` references from other subgraphs.
    #[graphql(entity)]
    async fn find_order_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Order>> {
        let Ok(id) = Uuid::parse_str(id.trim()) else { return Ok(None) };
        let caller = authentication(ctx).caller()?;
        match checkout::find(state(ctx), id, caller).await {
            Ok(order) => Ok(Some(Order(order))),
            Err(AppError::NotFound(_)) => Ok(None),
            Err(other) => Err(other.into()),
        }
    }

    /// Resolves `Product` references (orders know only the id).
    #[graphql(entity)]
    async fn find_product_by_id(&self, id: ID) -> Option<Product> {
        Uuid::parse_str(id.trim()).ok().map(|id| Product { id })
    }

    /// Resolves `Customer` references: their orders.
    #[graphql(entity)]
    async fn find_customer_by_id(&self, id: ID) -> Option<Customer> {
        Uuid::parse_str(id.trim()).ok().map(|id| Customer { id })
    }
}

/// Orders changes.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Places an order for a cart at the catalog's current prices and answers at once with
    /// its number, `PENDING`; watch it move to `CONFIRMED` (or `CANCELLED`, with a reason).
    async fn place_order(&self, ctx: &Context<'_>, input: PlaceOrderInput) -> Result<Order> {
        let caller = authentication(ctx).caller()?;
        let a = &input.shipping_address;
        let address = Address::parse(
            &a.name,
            &a.line1,
            a.line2.as_deref(),
            &a.city,
            &a.postal_code,
            &a.country,
        )?;
        let key = domain::idempotency_key(&input.idempotency_key)?;
        let email = input.email.as_deref().map(kernel::email::Email::parse).transpose()?;
        if caller.is_some() && email.is_some() {
            // Signed in, the order is the account's (or refused): two addresses for one order
            // would leave it unclear where its mails go.
            return Err(AppError::bad_input(
                "signed in, your order's e-mails go to your account's address: leave out `email`",
            )
            .into());
        }
        let payment_method_id = parse(&input.payment_method_id, "paymentMethodId")?;
        let orders = state(ctx);
        let cart_id = match (&input.cart_id, caller) {
            (Some(id), _) => parse(id, "cartId")?,
            (None, Some(caller)) => {
                // A retry after the order emptied the cart: the key names the order placed.
                match checkout::customer_order_by_key(orders, caller.customer_id, &key).await? {
                    Some(order) => order.cart_id,
                    None => orders
                        .own_cart(caller.customer_id)
                        .await?
                        .ok_or_else(|| AppError::bad_input("your cart is empty"))?,
                }
            }
            (None, None) => {
                return Err(
                    AppError::bad_input("give `cartId`, or sign in to buy your cart").into()
                );
            }
        };
        let placement = Placement {
            cart_id,
            payment_method_id,
            address,
            idempotency_key: key,
            redeem_points: input.redeem_points.map_or(0, i64::from),
            email,
        };
        Ok(Order(checkout::place(orders, caller, placement).await?))
    }

    /// Cancels your order before it ships: the stock goes back and the payment is voided or
    /// refunded.
    async fn cancel_order(&self, ctx: &Context<'_>, id: ID) -> Result<Order> {
        let caller = authentication(ctx).require()?;
        Ok(Order(checkout::cancel(state(ctx), parse(&id, "id")?, caller).await?))
    }
}

/// A committed change of an order's status, as subscribers see it.
pub struct OrderStatusEvent(Arc<StatusChange>);

#[Object]
impl OrderStatusEvent {
    /// The status entered.
    async fn status(&self) -> Result<Status> {
        Ok(Status::parse(&self.0.status)?)
    }
    /// The status left (`null` when the order was placed).
    async fn previous_status(&self) -> Result<Option<Status>> {
        Ok(self.0.previous_status.as_deref().map(Status::parse).transpose()?)
    }
    /// When.
    async fn at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.at
    }
    /// Why (for a cancellation or a failed delivery).
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    /// The order as it is now.
    async fn order(&self, ctx: &Context<'_>) -> Result<Order> {
        let row = order::Entity::find_by_id(self.0.order_id)
            .one(&state(ctx).db)
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::NotFound("no such order".into()))?;
        Ok(Order(row))
    }
}

/// The error a subscriber gets in its stream when it missed changes (it fell behind, or the
/// feed reconnected): the stream goes on; read the order to catch up.
fn missed() -> async_graphql::Error {
    async_graphql::Error::new("some status changes were missed; read the order to catch up")
        .extend_with(|_, e| e.set("code", "UPDATES_MISSED"))
}

/// The changes of a feed topic (the feed routes only the topic's own); ends after a final
/// status when `until_final`.
fn changes(
    feed: tokio::sync::broadcast::Receiver<FeedItem>,
    until_final: bool,
) -> impl futures::Stream<Item = Result<OrderStatusEvent>> {
    use tokio::sync::broadcast::error::RecvError;
    futures::stream::unfold((feed, false), move |(mut feed, ended)| async move {
        if ended {
            return None;
        }
        match feed.recv().await {
            Ok(FeedItem::Change(change)) => {
                let last = until_final && change.is_final();
                Some((Ok(OrderStatusEvent(change)), (feed, last)))
            }
            Ok(FeedItem::Gap) | Err(RecvError::Lagged(_)) => Some((Err(missed()), (feed, false))),
            Err(RecvError::Closed) => None,
        }
    })
}

/// Live order updates.
pub struct OrderSubscription;

#[Subscription(name = "Subscription")]
impl OrderSubscription {
    /// Every committed status change of one order, from now until it is delivered, fails
    /// delivery or is cancelled (then the stream completes; at once if it already has). Its
    /// owner's and administrators' (a guest order's for whoever has its id).
    async fn order_status_changed(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
    ) -> Result<impl futures::Stream<Item = Result<OrderStatusEvent>> + use<>> {
        let orders = state(ctx);
        let caller = authentication(ctx).caller()?;
        let id = parse(&order_id, "orderId")?;
        // Listening before reading: a change committed in between is not lost.
        let feed = orders.feed.subscribe(Topic::Order(id));
        let row = checkout::find(orders, id, caller).await?;
        let done = Status::parse(&row.status)?.is_final();
        let stream = changes(feed, true);
        Ok(futures::StreamExt::take_while(stream, move |_| std::future::ready(!done)))
    }

    /// Every committed status change of the signed-in customer's orders, as they happen.
    async fn my_order_updates(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl futures::Stream<Item = Result<OrderStatusEvent>> + use<>> {
        let customer = authentication(ctx).require()?.customer_id;
        let feed = state(ctx).feed.subscribe(Topic::Customer(customer));
        Ok(changes(feed, false))
    }
}
