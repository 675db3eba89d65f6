//! The rewards' GraphQL schema: `Customer.rewards` through federation (so `me { rewards {
//! balance pending transactions } }`), for the customer and administrators.

use std::sync::Arc;

use async_graphql::{
    Context, EmptyMutation, EmptySubscription, Enum, ID, Object, Result, Schema, SimpleObject,
};
use kernel::AppError;
use kernel::auth::authentication;
use kernel::money::{Currency, MoneyObject};
use uuid::Uuid;

use crate::{Rewards, ledger};

/// The rewards subgraph's schema.
pub type RewardsSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Builds the schema over rewards; `currency` is the store's (what points are worth in).
pub fn build_schema(rewards: Arc<Rewards>, currency: Currency) -> RewardsSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .data(rewards)
        .data(currency)
        .limit_depth(16)
        .finish()
}

fn state<'a>(ctx: &Context<'a>) -> &'a Arc<Rewards> {
    ctx.data_unchecked::<Arc<Rewards>>()
}

/// What moved the points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum RewardKind {
    /// Earned on a confirmed order; spendable once it is delivered.
    EarnedPending,
    /// The order was delivered: the points are spendable.
    Earned,
    /// The order was cancelled before delivery: its points are lost.
    Reversed,
    /// Spent at checkout.
    Redeemed,
    /// Spent points given back (the order was cancelled).
    Restored,
    /// Spendable points that lapsed.
    Expired,
}

impl RewardKind {
    fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            ledger::EARNED_PENDING => RewardKind::EarnedPending,
            ledger::EARNED => RewardKind::Earned,
            ledger::REVERSED => RewardKind::Reversed,
            ledger::REDEEMED => RewardKind::Redeemed,
            ledger::RESTORED => RewardKind::Restored,
            ledger::EXPIRED => RewardKind::Expired,
            _ => return None,
        })
    }
}

/// One movement of points.
#[derive(SimpleObject)]
pub struct RewardTransaction {
    /// What moved them.
    kind: RewardKind,
    /// Points in (positive) or out (negative).
    points: i32,
    /// The order it is about.
    order_id: Option<ID>,
    /// When spendable points earned here expire.
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When.
    at: chrono::DateTime<chrono::Utc>,
}

fn int(points: i64) -> i32 {
    i32::try_from(points).unwrap_or(if points < 0 { i32::MIN } else { i32::MAX })
}

/// A customer's loyalty points.
pub struct RewardsAccount {
    customer: Uuid,
}

#[Object]
impl RewardsAccount {
    /// Points that can be redeemed at checkout now.
    async fn balance(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(int(ledger::account_of(&state(ctx).db, self.customer).await?.balance))
    }
    /// Points earned on orders not yet delivered.
    async fn pending(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(int(ledger::account_of(&state(ctx).db, self.customer).await?.pending))
    }
    /// What one point takes off an order.
    async fn point_value(&self, ctx: &Context<'_>) -> MoneyObject {
        let currency = *ctx.data_unchecked::<Currency>();
        state(ctx).policy.point_value(currency).into()
    }
    /// The ledger, newest first (`first` at most 100, default 20).
    async fn transactions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> Result<Vec<RewardTransaction>> {
        if !(1..=100).contains(&first) {
            return Err(AppError::bad_input("`first` must be between 1 and 100").into());
        }
        let rows = ledger::entries_of(&state(ctx).db, self.customer, first as u64).await?;
        Ok(rows
            .into_iter()
            .filter_map(|e| {
                Some(RewardTransaction {
                    kind: RewardKind::parse(&e.kind)?,
                    points: int(e.points),
                    order_id: e.order_id.map(|id| ID(id.to_string())),
                    expires_at: e.expires_at,
                    at: e.created_at,
                })
            })
            .collect())
    }
}

/// A customer, as far as points go.
pub struct Customer {
    id: Uuid,
}

#[Object]
impl Customer {
    /// The customer id.
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    /// The customer's loyalty points (the customer and administrators only).
    async fn rewards(&self, ctx: &Context<'_>) -> Result<RewardsAccount> {
        let caller = authentication(ctx).require()?;
        if !caller.speaks_for(self.id) {
            return Err(AppError::Forbidden("these points are not yours".into()).into());
        }
        Ok(RewardsAccount { customer: self.id })
    }
}

/// Rewards queries.
pub struct Query;

#[Object]
impl Query {
    /// Resolves `Customer` references: their points.
    #[graphql(entity)]
    async fn find_customer_by_id(&self, id: ID) -> Option<Customer> {
        Uuid::parse_str(id.trim()).ok().map(|id| Customer { id })
    }
}
