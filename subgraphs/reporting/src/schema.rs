//! Reporting's GraphQL schema, for administrators only: `salesReport(from, to)` and
//! `rebuildReports`.

use std::sync::Arc;

use async_graphql::{
    ComplexObject, Context, EmptySubscription, ID, Object, Result, Schema, SimpleObject,
};
use kernel::auth::authentication;
use kernel::money::MoneyObject;

use crate::Reporting;
use crate::report::{self, Range};

/// The reporting subgraph's schema.
pub type ReportingSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema over reporting.
pub fn build_schema(reporting: Arc<Reporting>) -> ReportingSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .data(reporting)
        .limit_depth(16)
        .finish()
}

fn state<'a>(ctx: &Context<'a>) -> &'a Arc<Reporting> {
    ctx.data_unchecked::<Arc<Reporting>>()
}

/// One day's sales.
#[derive(SimpleObject)]
pub struct DailySales {
    /// The day (UTC), `YYYY-MM-DD`.
    day: String,
    /// Orders sold.
    orders: i32,
    /// What they paid.
    revenue: MoneyObject,
}

/// A category's sales.
#[derive(SimpleObject)]
pub struct CategorySales {
    /// The category's name when the orders were placed.
    category: String,
    /// Units sold.
    units: i32,
    /// What its lines came to (before points discounts).
    revenue: MoneyObject,
}

/// A catalog product, referenced.
pub struct Product {
    id: String,
}

#[Object]
impl Product {
    /// The product id.
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
}

/// A product's sales.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ProductSales {
    #[graphql(skip)]
    product_id: String,
    /// Its name when last sold.
    name: String,
    /// Units sold.
    units: i32,
    /// What its lines came to (before points discounts).
    revenue: MoneyObject,
}

#[ComplexObject]
impl ProductSales {
    /// The product (its current details through the catalog).
    async fn product(&self) -> Product {
        Product { id: self.product_id.clone() }
    }
}

/// Orders in one status.
#[derive(SimpleObject)]
pub struct StatusCount {
    /// The order status, such as `CONFIRMED` or `CANCELLED`.
    status: String,
    /// Orders placed in the range that stand there.
    orders: i32,
}

/// What the store sold over a range of days. A sale is a confirmed order that was not
/// cancelled; days are UTC days on which orders were placed.
pub struct SalesReport {
    range: Range,
}

fn int(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[Object]
impl SalesReport {
    /// The first day.
    async fn from(&self) -> String {
        self.range.from.format("%Y-%m-%d").to_string()
    }
    /// The last day.
    async fn to(&self) -> String {
        self.range.to.format("%Y-%m-%d").to_string()
    }
    /// Orders sold.
    async fn orders(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(int(report::totals(state(ctx), &self.range).await?.0))
    }
    /// What they paid, exactly.
    async fn revenue(&self, ctx: &Context<'_>) -> Result<MoneyObject> {
        Ok(report::totals(state(ctx), &self.range).await?.1.into())
    }
    /// Revenue over orders, rounded half to even to the currency's smallest unit.
    async fn average_order_value(&self, ctx: &Context<'_>) -> Result<MoneyObject> {
        let (orders, revenue) = report::totals(state(ctx), &self.range).await?;
        Ok(report::average(orders, &revenue).into())
    }
    /// Sales per day (days without sales left out), oldest first.
    async fn days(&self, ctx: &Context<'_>) -> Result<Vec<DailySales>> {
        let days = report::per_day(state(ctx), &self.range).await?;
        Ok(days
            .into_iter()
            .map(|d| DailySales { day: d.day, orders: int(d.orders), revenue: d.revenue.into() })
            .collect())
    }
    /// Sales per category, best first.
    async fn categories(&self, ctx: &Context<'_>) -> Result<Vec<CategorySales>> {
        let sold = report::per_category(state(ctx), &self.range).await?;
        Ok(sold
            .into_iter()
            .map(|s| CategorySales {
                category: s.name,
                units: int(s.units),
                revenue: s.revenue.into(),
            })
            .collect())
    }
    /// The products that brought the most (`limit` 1 to 100, default 10).
    async fn top_products(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10)] limit: i32,
    ) -> Result<Vec<ProductSales>> {
        if !(1..=100).contains(&limit) {
            return Err(kernel::AppError::bad_input("`limit` must be between 1 and 100").into());
        }
        let sold = report::top_products(state(ctx), &self.range, limit as u64).await?;
        Ok(sold
            .into_iter()
            .map(|s| ProductSales {
                product_id: s.key,
                name: s.name,
                units: int(s.units),
                revenue: s.revenue.into(),
            })
            .collect())
    }
    /// Orders placed in the range, per status (pending and cancelled ones included).
    async fn status_counts(&self, ctx: &Context<'_>) -> Result<Vec<StatusCount>> {
        let counts = report::per_status(state(ctx), &self.range).await?;
        Ok(counts.into_iter().map(|(status, n)| StatusCount { status, orders: int(n) }).collect())
    }
}

/// Reporting queries.
pub struct Query;

#[Object]
impl Query {
    /// Sales from `from` to `to` (UTC days `YYYY-MM-DD`, both included, at most 366 days;
    /// administrators only).
    async fn sales_report(
        &self,
        ctx: &Context<'_>,
        from: String,
        to: String,
    ) -> Result<SalesReport> {
        authentication(ctx).require_admin()?;
        Ok(SalesReport { range: Range::parse(&from, &to)? })
    }

    /// Resolves `Product` references (reporting adds nothing to a product; the key lets
    /// `topProducts { product { name } }` reach the catalog).
    #[graphql(entity)]
    async fn find_product_by_id(&self, id: ID) -> Product {
        Product { id: id.to_string() }
    }
}

/// Reporting changes.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Throws the read model away and builds it again from the event history it keeps;
    /// answers how many events were replayed (administrators only).
    async fn rebuild_reports(&self, ctx: &Context<'_>) -> Result<i32> {
        authentication(ctx).require_admin()?;
        Ok(int(crate::projection::rebuild(state(ctx)).await? as i64))
    }
}
