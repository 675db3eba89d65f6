//! Money: an exact decimal amount with its ISO 4217 currency.
//!
//! Amounts are `rust_decimal::Decimal`, never floats. An amount may not carry more fraction
//! digits than its currency has minor units (no silent rounding: `19.999 USD` is refused), and
//! arithmetic across different currencies is an error rather than a guess.

use std::fmt;

use rust_decimal::Decimal;

use crate::AppError;

/// Active ISO 4217 currency codes and their number of minor-unit digits.
#[rustfmt::skip]
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2), ("AFN", 2), ("ALL", 2), ("AMD", 2), ("AOA", 2), ("ARS", 2), ("AUD", 2),
    ("AWG", 2), ("AZN", 2), ("BAM", 2), ("BBD", 2), ("BDT", 2), ("BGN", 2), ("BHD", 3),
    ("BIF", 0), ("BMD", 2), ("BND", 2), ("BOB", 2), ("BOV", 2), ("BRL", 2), ("BSD", 2),
    ("BTN", 2), ("BWP", 2), ("BYN", 2), ("BZD", 2), ("CAD", 2), ("CDF", 2), ("CHE", 2),
    ("CHF", 2), ("CHW", 2), ("CLF", 4), ("CLP", 0), ("CNY", 2), ("COP", 2), ("COU", 2),
    ("CRC", 2), ("CUP", 2), ("CVE", 2), ("CZK", 2), ("DJF", 0), ("DKK", 2), ("DOP", 2),
    ("DZD", 2), ("EGP", 2), ("ERN", 2), ("ETB", 2), ("EUR", 2), ("FJD", 2), ("FKP", 2),
    ("GBP", 2), ("GEL", 2), ("GHS", 2), ("GIP", 2), ("GMD", 2), ("GNF", 0), ("GTQ", 2),
    ("GYD", 2), ("HKD", 2), ("HNL", 2), ("HTG", 2), ("HUF", 2), ("IDR", 2), ("ILS", 2),
    ("INR", 2), ("IQD", 3), ("IRR", 2), ("ISK", 0), ("JMD", 2), ("JOD", 3), ("JPY", 0),
    ("KES", 2), ("KGS", 2), ("KHR", 2), ("KMF", 0), ("KPW", 2), ("KRW", 0), ("KWD", 3),
    ("KYD", 2), ("KZT", 2), ("LAK", 2), ("LBP", 2), ("LKR", 2), ("LRD", 2), ("LSL", 2),
    ("LYD", 3), ("MAD", 2), ("MDL", 2), ("MGA", 2), ("MKD", 2), ("MMK", 2), ("MNT", 2),
    ("MOP", 2), ("MRU", 2), ("MUR", 2), ("MVR", 2), ("MWK", 2), ("MXN", 2), ("MXV", 2),
    ("MYR", 2), ("MZN", 2), ("NAD", 2), ("NGN", 2), ("NIO", 2), ("NOK", 2), ("NPR", 2),
    ("NZD", 2), ("OMR", 3), ("PAB", 2), ("PEN", 2), ("PGK", 2), ("PHP", 2), ("PKR", 2),
    ("PLN", 2), ("PYG", 0), ("QAR", 2), ("RON", 2), ("RSD", 2), ("RUB", 2), ("RWF", 0),
    ("SAR", 2), ("SBD", 2), ("SCR", 2), ("SDG", 2), ("SEK", 2), ("SGD", 2), ("SHP", 2),
    ("SLE", 2), ("SOS", 2), ("SRD", 2), ("SSP", 2), ("STN", 2), ("SVC", 2), ("SYP", 2),
    ("SZL", 2), ("THB", 2), ("TJS", 2), ("TMT", 2), ("TND", 3), ("TOP", 2), ("TRY", 2),
    ("TTD", 2), ("TWD", 2), ("TZS", 2), ("UAH", 2), ("UGX", 0), ("USD", 2), ("USN", 2),
    ("UYI", 0), ("UYU", 2), ("UYW", 4), ("UZS", 2), ("VED", 2), ("VES", 2), ("VND", 0),
    ("VUV", 0), ("WST", 2), ("XAF", 0), ("XCD", 2), ("XCG", 2), ("XOF", 0), ("XPF", 0),
    ("YER", 2), ("ZAR", 2), ("ZMW", 2), ("ZWG", 2),
];

/// Why a money value or operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The code is not an active ISO 4217 currency.
    #[error("`{0}` is not an ISO 4217 currency code")]
    UnknownCurrency(String),
    /// More fraction digits than the currency has minor units.
    #[error("{currency} amounts have at most {digits} decimal places")]
    TooPrecise { currency: &'static str, digits: u8 },
    /// Two amounts in different currencies were combined.
    #[error("cannot combine {0} and {1} amounts")]
    CurrencyMismatch(&'static str, &'static str),
    /// A negative amount where the domain forbids one.
    #[error("amount must not be negative")]
    Negative,
    /// The amount does not fit the range we store.
    #[error("amount is out of range")]
    Overflow,
}

impl From<MoneyError> for AppError {
    fn from(err: MoneyError) -> Self {
        AppError::bad_input(err.to_string())
    }
}

/// An ISO 4217 currency, known to be active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    digits: u8,
}

impl Currency {
    /// US dollars, the demo store's currency.
    pub const USD: Currency = Currency { code: "USD", digits: 2 };

    /// Parses a three-letter code (case-insensitive).
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let upper = code.trim().to_ascii_uppercase();
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == upper)
            .map(|&(code, digits)| Currency { code, digits })
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_string()))
    }

    /// The three-letter code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// How many fraction digits its minor unit has (2 for USD, 0 for JPY).
    pub fn minor_digits(&self) -> u8 {
        self.digits
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// An exact amount of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Builds a value, refusing more precision than the currency has; the scale is normalised
    /// to the currency's minor units so that `5 USD` and `5.00 USD` are the same value.
    pub fn new(amount: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        let normalized = amount.normalize();
        if normalized.scale() > u32::from(currency.digits) {
            return Err(MoneyError::TooPrecise {
                currency: currency.code,
                digits: currency.digits,
            });
        }
        let mut amount = normalized;
        amount.rescale(u32::from(currency.digits));
        Ok(Self { amount, currency })
    }

    /// Like [`Money::new`], for places where the domain forbids negative amounts (prices).
    pub fn non_negative(amount: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(MoneyError::Negative);
        }
        Self::new(amount, currency)
    }

    /// Parses an amount and a currency code as received from a client.
    pub fn parse(amount: Decimal, currency: &str) -> Result<Self, MoneyError> {
        Self::new(amount, Currency::parse(currency)?)
    }

    /// Zero of a currency.
    pub fn zero(currency: Currency) -> Self {
        Self::from_minor(0, currency)
    }

    /// A value from an integer count of minor units (cents), as stored in the database.
    pub fn from_minor(minor: i64, currency: Currency) -> Self {
        Self { amount: Decimal::new(minor, u32::from(currency.digits)), currency }
    }

    /// The integer count of minor units, for storage and exact comparison.
    pub fn minor_units(&self) -> Result<i64, MoneyError> {
        let mut scaled = self.amount;
        scaled.rescale(u32::from(self.currency.digits));
        i64::try_from(scaled.mantissa()).map_err(|_| MoneyError::Overflow)
    }

    /// The decimal amount, with exactly the currency's minor-unit digits.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// As events and internal answers carry it: `{ "amount": "19.99", "currency": "USD" }`
    /// (the amount a decimal string, never a float).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "amount": self.amount.to_string(), "currency": self.currency.code() })
    }

    /// Sum of two values of the same currency.
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount = self.amount.checked_add(other.amount).ok_or(MoneyError::Overflow)?;
        Ok(Money { amount, currency: self.currency })
    }

    /// Difference of two values of the same currency.
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount = self.amount.checked_sub(other.amount).ok_or(MoneyError::Overflow)?;
        Ok(Money { amount, currency: self.currency })
    }

    /// This value times a whole quantity (a line total).
    pub fn times(&self, quantity: u32) -> Result<Money, MoneyError> {
        let amount =
            self.amount.checked_mul(Decimal::from(quantity)).ok_or(MoneyError::Overflow)?;
        Ok(Money { amount, currency: self.currency })
    }

    /// True when below zero.
    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency.code, other.currency.code))
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// The GraphQL shape of [`Money`], shared by every subgraph that shows an amount.
#[derive(async_graphql::SimpleObject, Debug, Clone)]
#[graphql(name = "Money", shareable)]
pub struct MoneyObject {
    /// The exact amount, as a decimal string such as "19.99".
    pub amount: Decimal,
    /// The ISO 4217 currency code, such as "USD".
    pub currency: String,
}

impl From<Money> for MoneyObject {
    fn from(m: Money) -> Self {
        Self { amount: m.amount(), currency: m.currency().code().to_string() }
    }
}

/// The GraphQL input shape of a money value; parse it with [`MoneyInput::parse`].
#[derive(async_graphql::InputObject, Debug, Clone)]
pub struct MoneyInput {
    /// The exact amount, as a decimal string such as "19.99".
    pub amount: Decimal,
    /// The ISO 4217 currency code, such as "USD".
    pub currency: String,
}

impl MoneyInput {
    /// Parses into a domain value that is never negative.
    pub fn parse_non_negative(&self) -> Result<Money, MoneyError> {
        Money::non_negative(self.amount, Currency::parse(&self.currency)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn usd(s: &str) -> Money {
        Money::new(Decimal::from_str(s).unwrap(), Currency::USD).unwrap()
    }

    #[test]
    fn amounts_are_normalised_to_minor_units() {
        assert_eq!(usd("5"), usd("5.00"));
        assert_eq!(usd("19.9").amount().to_string(), "19.90");
        assert_eq!(usd("19.99").minor_units().unwrap(), 1999);
        assert_eq!(Money::from_minor(1999, Currency::USD), usd("19.99"));
    }

    #[test]
    fn more_precision_than_the_currency_is_refused_not_rounded() {
        let err = Money::new(Decimal::from_str("19.999").unwrap(), Currency::USD).unwrap_err();
        assert_eq!(err, MoneyError::TooPrecise { currency: "USD", digits: 2 });
        let jpy = Currency::parse("jpy").unwrap();
        assert!(Money::new(Decimal::from_str("10.5").unwrap(), jpy).is_err());
        assert_eq!(Money::new(Decimal::from(1050), jpy).unwrap().minor_units().unwrap(), 1050);
    }

    #[test]
    fn different_currencies_do_not_add() {
        let eur = Money::parse(Decimal::ONE, "EUR").unwrap();
        assert_eq!(usd("1").checked_add(&eur), Err(MoneyError::CurrencyMismatch("USD", "EUR")));
        assert_eq!(usd("1.10").checked_add(&usd("2.05")).unwrap(), usd("3.15"));
        assert_eq!(usd("0.10").times(3).unwrap(), usd("0.30"));
    }

    #[test]
    fn negatives_and_unknown_codes_are_refused_where_required() {
        assert_eq!(
            Money::non_negative(Decimal::from(-1), Currency::USD),
            Err(MoneyError::Negative)
        );
        assert!(matches!(Currency::parse("XYZ"), Err(MoneyError::UnknownCurrency(_))));
        assert!(usd("1").checked_sub(&usd("2")).unwrap().is_negative());
    }
}
