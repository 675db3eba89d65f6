//! Fulfillment's GraphQL schema: `Order.shipment` through federation for the order's owner and
//! administrators, and the administrators' hand on the carrier (`advanceShipment`,
//! `failShipment`).

use std::sync::Arc;

use async_graphql::{Context, EmptySubscription, ID, Object, Result, Schema, SimpleObject};
use entities::fulfillment::shipment;
use kernel::AppError;
use kernel::auth::authentication;
use uuid::Uuid;

use crate::Fulfillment;
use crate::carrier::ShipmentStatus;
use crate::shipments;

/// The fulfillment subgraph's schema.
pub type FulfillmentSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema over fulfillment.
pub fn build_schema(fulfillment: Arc<Fulfillment>) -> FulfillmentSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .data(fulfillment)
        .limit_depth(16)
        .finish()
}

fn state<'a>(ctx: &Context<'a>) -> &'a Arc<Fulfillment> {
    ctx.data_unchecked::<Arc<Fulfillment>>()
}

/// A parcel on its way to the customer.
pub struct Shipment(shipment::Model);

/// A product in a parcel.
#[derive(SimpleObject)]
pub struct ShipmentItem {
    /// The product id.
    product_id: ID,
    /// Its name when ordered.
    name: String,
    /// Units in the parcel.
    quantity: i32,
}

/// What the carrier said, step by step.
#[derive(SimpleObject)]
pub struct TrackingEvent {
    /// The status the parcel entered.
    status: ShipmentStatus,
    /// What happened.
    description: String,
    /// When.
    at: chrono::DateTime<chrono::Utc>,
}

#[Object]
impl Shipment {
    /// Shipment id (for `advanceShipment` and `failShipment`).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The carrier.
    async fn carrier(&self) -> &str {
        &self.0.carrier
    }
    /// The carrier's tracking number.
    async fn tracking_number(&self) -> &str {
        &self.0.tracking_number
    }
    /// Where the parcel stands.
    async fn status(&self) -> Result<ShipmentStatus> {
        Ok(ShipmentStatus::parse(&self.0.status)?)
    }
    /// Why delivery failed, or why the shipment was cancelled.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    /// What is in the parcel.
    async fn items(&self) -> Vec<ShipmentItem> {
        self.0
            .items
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| ShipmentItem {
                product_id: ID(item["productId"].as_str().unwrap_or_default().to_string()),
                name: item["name"].as_str().unwrap_or_default().to_string(),
                quantity: item["quantity"]
                    .as_i64()
                    .and_then(|q| i32::try_from(q).ok())
                    .unwrap_or(0),
            })
            .collect()
    }
    /// The carrier's tracking events, oldest first.
    async fn events(&self, ctx: &Context<'_>) -> Result<Vec<TrackingEvent>> {
        let rows = shipments::tracking(&state(ctx).db, self.0.id).await?;
        rows.into_iter()
            .map(|e| {
                Ok(TrackingEvent {
                    status: ShipmentStatus::parse(&e.status)?,
                    description: e.description,
                    at: e.at,
                })
            })
            .collect()
    }
    /// When the shipment was created (the order was confirmed).
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.created_at
    }
    /// Last change.
    async fn updated_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.updated_at
    }
}

/// An order, as far as its parcel goes.
pub struct Order {
    id: Uuid,
}

#[Object]
impl Order {
    /// The order id.
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    /// The order's parcel: its owner's and administrators' to see; `null` until the order is
    /// confirmed.
    async fn shipment(&self, ctx: &Context<'_>) -> Result<Option<Shipment>> {
        let Some(row) = shipments::of_order(&state(ctx).db, self.id).await? else {
            return Ok(None);
        };
        let caller = authentication(ctx).caller()?;
        kernel::auth::may_see(row.customer_id, caller, "order")?;
        Ok(Some(Shipment(row)))
    }
}

fn shipment_id(id: &ID) -> Result<Uuid, AppError> {
    Uuid::parse_str(id.trim()).map_err(|_| AppError::bad_input("`id` is not a shipment id"))
}

/// Fulfillment queries.
pub struct Query;

#[Object]
impl Query {
    /// Resolves `Order` references from other subgraphs.
    #[graphql(entity)]
    async fn find_order_by_id(&self, id: ID) -> Option<Order> {
        Uuid::parse_str(id.trim()).ok().map(|id| Order { id })
    }
}

/// Fulfillment changes (administrators only).
pub struct Mutation;

#[Object]
impl Mutation {
    /// Takes the parcel's next step now instead of waiting for the carrier: `PREPARING` →
    /// `SHIPPED` → `OUT_FOR_DELIVERY` → `DELIVERED`. A parcel with no next step is a
    /// `CONFLICT`.
    async fn advance_shipment(&self, ctx: &Context<'_>, id: ID) -> Result<Shipment> {
        authentication(ctx).require_admin()?;
        let id = shipment_id(&id)?;
        Ok(Shipment(shipments::advance(state(ctx), id).await?))
    }

    /// Reports that the carrier could not deliver the parcel (it goes back to the store); the
    /// order becomes `DELIVERY_FAILED`. Only a parcel on its way can fail (`CONFLICT`
    /// otherwise).
    async fn fail_shipment(&self, ctx: &Context<'_>, id: ID, reason: String) -> Result<Shipment> {
        authentication(ctx).require_admin()?;
        let id = shipment_id(&id)?;
        Ok(Shipment(shipments::fail(state(ctx), id, &reason).await?))
    }
}
