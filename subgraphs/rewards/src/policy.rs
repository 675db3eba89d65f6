//! The rules of the points: how many an order earns, what redeemed points are worth, how
//! long they last. Exact arithmetic only: points are whole, money is decimal.

use std::time::Duration;

use kernel::money::{Currency, Money};
use kernel::{AppError, AppResult};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// The loyalty programme's rules.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Points earned per whole currency unit paid (rounded down).
    pub earn_per_unit: u32,
    /// Points that make one currency unit of discount.
    pub points_per_unit: u32,
    /// How long spendable points last.
    pub expiry: Duration,
    /// How long a redemption waits for its order before it is given back.
    pub hold: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            earn_per_unit: 10,
            points_per_unit: 100,
            expiry: Duration::from_secs(365 * 24 * 3600),
            hold: Duration::from_secs(15 * 60),
        }
    }
}

impl Policy {
    /// Points an order paying `total` earns.
    pub fn points_for(&self, total: &Money) -> i64 {
        (total.amount() * Decimal::from(self.earn_per_unit)).floor().to_i64().unwrap_or(0).max(0)
    }

    /// The discount `points` buy in `currency`. Refused when it is not a whole number of
    /// the currency's smallest unit (no silent rounding).
    pub fn discount(&self, points: i64, currency: Currency) -> AppResult<Money> {
        if points <= 0 {
            return Err(AppError::bad_input("redeem a positive number of points"));
        }
        let per_unit = Decimal::from(self.points_per_unit.max(1));
        let amount = Decimal::from(points) / per_unit;
        let minor = Decimal::from(10u64.pow(u32::from(currency.minor_digits())));
        if (amount * minor).fract() != Decimal::ZERO {
            let step = (per_unit / minor).max(Decimal::ONE);
            return Err(AppError::bad_input(format!(
                "points are redeemed in multiples of {step} in {}",
                currency.code()
            )));
        }
        Ok(Money::non_negative(amount, currency)?)
    }

    /// What one point is worth in `currency`.
    pub fn point_value(&self, currency: Currency) -> Money {
        let amount = Decimal::ONE / Decimal::from(self.points_per_unit.max(1));
        Money::non_negative(amount, currency).unwrap_or_else(|_| Money::zero(currency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_earn_whole_points_and_points_buy_exact_discounts() {
        let policy = Policy::default();
        let usd = Currency::parse("USD").unwrap();
        let paid = Money::non_negative(Decimal::new(4_999, 2), usd).unwrap();
        assert_eq!(policy.points_for(&paid), 499, "49.99 at 10 a unit, rounded down");
        assert_eq!(
            policy.discount(250, usd).unwrap().to_string(),
            Money::non_negative(Decimal::new(250, 2), usd).unwrap().to_string()
        );
        assert!(policy.discount(0, usd).is_err() && policy.discount(-5, usd).is_err());
        // A currency without cents cannot take a hundredth of a unit.
        let jpy = Currency::parse("JPY").unwrap();
        assert!(policy.discount(150, jpy).is_err());
        assert!(policy.discount(200, jpy).is_ok());
    }
}
