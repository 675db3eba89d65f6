//! The reports, read from the model with SQL aggregates. A sale is a confirmed order not
//! cancelled; its revenue is what the customer paid (after points). Category and product
//! figures are the lines' totals (before points, which discount an order, not a product).

use chrono::NaiveDate;
use entities::reporting::{sale, sale_line};
use kernel::money::{Currency, Money};
use kernel::{AppError, AppResult};
use rust_decimal::{Decimal, RoundingStrategy};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::Reporting;

/// Longest range a report covers, in days.
pub const MAX_DAYS: i64 = 366;

/// A checked, inclusive range of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
}

impl Range {
    /// Parses `YYYY-MM-DD` days; refuses a reversed range or one longer than [`MAX_DAYS`].
    pub fn parse(from: &str, to: &str) -> AppResult<Range> {
        let day = |name: &str, text: &str| {
            NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
                AppError::bad_input(format!("`{name}` must be a day such as 2026-11-21"))
            })
        };
        let (from, to) = (day("from", from)?, day("to", to)?);
        if to < from {
            return Err(AppError::bad_input("`to` is before `from`"));
        }
        if (to - from).num_days() + 1 > MAX_DAYS {
            return Err(AppError::bad_input(format!("a report covers at most {MAX_DAYS} days")));
        }
        Ok(Range { from, to })
    }

    fn bounds(&self) -> (String, String) {
        (self.from.format("%Y-%m-%d").to_string(), self.to.format("%Y-%m-%d").to_string())
    }
}

/// One day's sales.
#[derive(Debug, Clone, PartialEq)]
pub struct Day {
    /// The day (UTC).
    pub day: String,
    /// Orders sold.
    pub orders: i64,
    /// What they paid.
    pub revenue: Money,
}

/// Sales of a category or a product.
#[derive(Debug, Clone, PartialEq)]
pub struct Sold {
    /// The category's name, or the product's id.
    pub key: String,
    /// The product's name (for a product).
    pub name: String,
    /// Units sold.
    pub units: i64,
    /// What the lines came to.
    pub revenue: Money,
}

fn sum_of(column: impl sea_orm::sea_query::IntoColumnRef) -> sea_orm::sea_query::Expr {
    // PostgreSQL sums BIGINT into NUMERIC; both backends read back a BIGINT.
    Expr::expr(Func::sum(Expr::col(column))).cast_as(Alias::new("BIGINT"))
}

fn money(minor: i64, currency: Currency) -> Money {
    Money::from_minor(minor, currency)
}

fn sold(reporting: &Reporting, range: &Range) -> sea_orm::Select<sale::Entity> {
    let (from, to) = range.bounds();
    let _ = reporting;
    sale::Entity::find()
        .filter(sale::Column::Confirmed.eq(true))
        .filter(sale::Column::Status.ne("CANCELLED"))
        .filter(sale::Column::Day.gte(from))
        .filter(sale::Column::Day.lte(to))
}

/// Sales per day in the range (days without sales are left out).
pub async fn per_day(reporting: &Reporting, range: &Range) -> AppResult<Vec<Day>> {
    let rows: Vec<(String, i64, Option<i64>)> = sold(reporting, range)
        .select_only()
        .column(sale::Column::Day)
        .column_as(Expr::col(sale::Column::OrderId).count(), "orders")
        .column_as(sum_of(sale::Column::TotalMinor), "revenue")
        .group_by(sale::Column::Day)
        .order_by_asc(sale::Column::Day)
        .into_tuple()
        .all(&reporting.db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(day, orders, revenue)| Day {
            day,
            orders,
            revenue: money(revenue.unwrap_or(0), reporting.currency),
        })
        .collect())
}

/// Orders sold and what they paid, over the range.
pub async fn totals(reporting: &Reporting, range: &Range) -> AppResult<(i64, Money)> {
    let row: Option<(i64, Option<i64>)> = sold(reporting, range)
        .select_only()
        .column_as(Expr::col(sale::Column::OrderId).count(), "orders")
        .column_as(sum_of(sale::Column::TotalMinor), "revenue")
        .into_tuple()
        .one(&reporting.db)
        .await?;
    let (orders, revenue) = row.unwrap_or((0, None));
    Ok((orders, money(revenue.unwrap_or(0), reporting.currency)))
}

/// The average order value: revenue over orders, rounded half to even to the currency's
/// smallest unit (the one rounding in reports, and said so in the schema).
pub fn average(orders: i64, revenue: &Money) -> Money {
    if orders == 0 {
        return Money::zero(revenue.currency());
    }
    let digits = u32::from(revenue.currency().minor_digits());
    let mean = (revenue.amount() / Decimal::from(orders))
        .round_dp_with_strategy(digits, RoundingStrategy::MidpointNearestEven);
    Money::non_negative(mean, revenue.currency())
        .unwrap_or_else(|_| Money::zero(revenue.currency()))
}

fn lines_in(range: &Range) -> sea_orm::Select<sale_line::Entity> {
    let (from, to) = range.bounds();
    sale_line::Entity::find()
        .filter(sale_line::Column::Day.gte(from))
        .filter(sale_line::Column::Day.lte(to))
}

/// Sales per category over the range, best first.
pub async fn per_category(reporting: &Reporting, range: &Range) -> AppResult<Vec<Sold>> {
    let rows: Vec<(String, Option<i64>, Option<i64>)> = lines_in(range)
        .select_only()
        .column(sale_line::Column::Category)
        .column_as(sum_of(sale_line::Column::Quantity), "units")
        .column_as(sum_of(sale_line::Column::LineTotalMinor), "revenue")
        .group_by(sale_line::Column::Category)
        .into_tuple()
        .all(&reporting.db)
        .await?;
    let mut out: Vec<Sold> = rows
        .into_iter()
        .map(|(category, units, revenue)| Sold {
            key: category.clone(),
            name: category,
            units: units.unwrap_or(0),
            revenue: money(revenue.unwrap_or(0), reporting.currency),
        })
        .collect();
    out.sort_by(|a, b| b.revenue.amount().cmp(&a.revenue.amount()).then(a.key.cmp(&b.key)));
    Ok(out)
}

/// The `limit` products that brought the most over the range.
pub async fn top_products(
    reporting: &Reporting,
    range: &Range,
    limit: u64,
) -> AppResult<Vec<Sold>> {
    let rows: Vec<(uuid::Uuid, String, Option<i64>, Option<i64>)> = lines_in(range)
        .select_only()
        .column(sale_line::Column::ProductId)
        .column_as(Expr::col(sale_line::Column::Name).max(), "name")
        .column_as(sum_of(sale_line::Column::Quantity), "units")
        .column_as(sum_of(sale_line::Column::LineTotalMinor), "revenue")
        .group_by(sale_line::Column::ProductId)
        .order_by_desc(sum_of(sale_line::Column::LineTotalMinor))
        .order_by_asc(sale_line::Column::ProductId)
        .limit(limit)
        .into_tuple()
        .all(&reporting.db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, units, revenue)| Sold {
            key: id.to_string(),
            name,
            units: units.unwrap_or(0),
            revenue: money(revenue.unwrap_or(0), reporting.currency),
        })
        .collect())
}

/// Orders placed in the range per status (cancelled and pending ones included).
pub async fn per_status(reporting: &Reporting, range: &Range) -> AppResult<Vec<(String, i64)>> {
    let (from, to) = range.bounds();
    Ok(sale::Entity::find()
        .filter(sale::Column::Day.gte(from))
        .filter(sale::Column::Day.lte(to))
        .select_only()
        .column(sale::Column::Status)
        .column_as(Expr::col(sale::Column::OrderId).count(), "orders")
        .group_by(sale::Column::Status)
        .order_by_asc(sale::Column::Status)
        .into_tuple()
        .all(&reporting.db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        assert!(Range::parse("2026-11-01", "2026-11-30").is_ok());
        assert!(Range::parse("2026-11-30", "2026-11-01").is_err(), "reversed");
        assert!(Range::parse("2025-01-01", "2026-11-30").is_err(), "too long");
        assert!(Range::parse("2026-02-30", "2026-03-01").is_err(), "no such day");
        assert!(Range::parse("2025-11-30", "2026-11-30").is_ok(), "366 days");
    }

    #[test]
    fn the_average_is_rounded_to_the_cent_half_to_even() {
        let usd = Currency::parse("USD").unwrap();
        let revenue = Money::from_minor(1000, usd);
        assert_eq!(average(3, &revenue).minor_units().unwrap(), 333);
        assert_eq!(average(0, &revenue).minor_units().unwrap(), 0);
        assert_eq!(
            average(8, &Money::from_minor(100, usd)).minor_units().unwrap(),
            12,
            "12.5 → 12"
        );
    }
}
