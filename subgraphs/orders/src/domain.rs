//! The Order aggregate's rules: its statuses and the only transitions between them, the
//! shipping address, order numbers, and what makes two placements the same request.

use kernel::{AppError, AppResult};
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum Status {
    /// Placed; stock and payment are being arranged.
    Pending,
    /// The card authorised the amount.
    PaymentAuthorized,
    /// Stock held and payment authorised: it will ship.
    Confirmed,
    /// The parcel left the warehouse.
    Shipped,
    /// The carrier is delivering it today.
    OutForDelivery,
    /// Delivered: the order is complete.
    Delivered,
    /// The carrier could not deliver it (the parcel goes back to the store).
    DeliveryFailed,
    /// Cancelled, with a reason.
    Cancelled,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 8] = [
        Status::Pending,
        Status::PaymentAuthorized,
        Status::Confirmed,
        Status::Shipped,
        Status::OutForDelivery,
        Status::Delivered,
        Status::DeliveryFailed,
        Status::Cancelled,
    ];

    /// The statuses an order may move to `to` from.
    pub fn sources_of(to: Status) -> impl Iterator<Item = Status> {
        Status::ALL.into_iter().filter(move |from| from.can_become(to))
    }

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::PaymentAuthorized => "PAYMENT_AUTHORIZED",
            Status::Confirmed => "CONFIRMED",
            Status::Shipped => "SHIPPED",
            Status::OutForDelivery => "OUT_FOR_DELIVERY",
            Status::Delivered => "DELIVERED",
            Status::DeliveryFailed => "DELIVERY_FAILED",
            Status::Cancelled => "CANCELLED",
        }
    }

    /// From storage (an unknown value is an internal error).
    pub fn parse(text: &str) -> AppResult<Status> {
        Ok(match text {
            "PENDING" => Status::Pending,
            "PAYMENT_AUTHORIZED" => Status::PaymentAuthorized,
            "CONFIRMED" => Status::Confirmed,
            "SHIPPED" => Status::Shipped,
            "OUT_FOR_DELIVERY" => Status::OutForDelivery,
            "DELIVERED" => Status::Delivered,
            "DELIVERY_FAILED" => Status::DeliveryFailed,
            "CANCELLED" => Status::Cancelled,
            other => {
                return Err(AppError::internal(anyhow::anyhow!("unknown order status {other}")));
            }
        })
    }

    /// Whether the aggregate may move from `self` to `to`. Once shipped an order can no
    /// longer be cancelled; a carrier may deliver without announcing the last leg.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Pending, PaymentAuthorized)
                | (PaymentAuthorized, Confirmed)
                | (Confirmed, Shipped)
                | (Shipped, OutForDelivery)
                | (Shipped | OutForDelivery, Delivered | DeliveryFailed)
                | (Pending | PaymentAuthorized | Confirmed, Cancelled)
        )
    }

    /// Whether the order has reached an end: nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Delivered | Status::DeliveryFailed | Status::Cancelled)
    }
}

/// A shipping address, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, async_graphql::SimpleObject)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// Recipient.
    pub name: String,
    /// Street and number.
    pub line1: String,
    /// Flat, floor, building.
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: String,
}

impl Address {
    /// Trims and checks every field: the required ones present, none too long, the country a
    /// two-letter code.
    pub fn parse(
        name: &str,
        line1: &str,
        line2: Option<&str>,
        city: &str,
        postal_code: &str,
        country: &str,
    ) -> AppResult<Address> {
        let required = |field: &str, value: &str, max: usize| -> AppResult<String> {
            let value = value.trim();
            if value.is_empty() {
                return Err(AppError::bad_input(format!("the address needs a {field}")));
            }
            if value.chars().count() > max || value.chars().any(char::is_control) {
                return Err(AppError::bad_input(format!("the address {field} is not valid")));
            }
            Ok(value.to_string())
        };
        let country = country.trim().to_ascii_uppercase();
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(AppError::bad_input("the country must be a two-letter code such as FR"));
        }
        let line2 = match line2.map(str::trim).filter(|l| !l.is_empty()) {
            Some(l) => Some(required("second line", l, 200)?),
            None => None,
        };
        Ok(Address {
            name: required("name", name, 200)?,
            line1: required("street", line1, 200)?,
            line2,
            city: required("city", city, 100)?,
            postal_code: required("postal code", postal_code, 20)?,
            country,
        })
    }
}

/// A human-readable order number: `BS-` and eight characters of Crockford's base 32 (no
/// I, L, O or U to misread).
pub fn order_number() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut bits: u64 = rand::random();
    let mut out = String::from("BS-");
    for _ in 0..8 {
        out.push(char::from(ALPHABET[(bits & 31) as usize]));
        bits >>= 5;
    }
    out
}

/// Checks a client's idempotency key.
pub fn idempotency_key(key: &str) -> AppResult<String> {
    let key = key.trim();
    if key.is_empty() || key.len() > 100 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AppError::bad_input(
            "the idempotency key must be 1 to 100 visible ASCII characters",
        ));
    }
    Ok(key.to_string())
}

/// What identifies a placement request apart from its key: the same key with a different
/// request is refused.
pub fn request_hash(
    cart: &uuid::Uuid,
    payment_method: &uuid::Uuid,
    address: &Address,
    points: i64,
    email: Option<&kernel::email::Email>,
) -> String {
    let address = serde_json::to_string(address).unwrap_or_default();
    // Without points or an e-mail the fingerprint is what it was before either could be
    // given, so that a retry across an upgrade still finds its order.
    let mut text = match points {
        0 => format!("{cart}|{payment_method}|{address}"),
        n => format!("{cart}|{payment_method}|{address}|{n}"),
    };
    if let Some(email) = email {
        text.push_str("|email:");
        text.push_str(email.as_str());
    }
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_transitions_are_allowed() {
        use Status::*;
        assert!(Pending.can_become(PaymentAuthorized));
        assert!(PaymentAuthorized.can_become(Confirmed));
        assert!(Confirmed.can_become(Cancelled));
        assert!(!Pending.can_become(Confirmed));
        assert!(!Cancelled.can_become(Pending));
        assert!(!Cancelled.can_become(Cancelled));
        assert!(!Confirmed.can_become(Pending));
        assert!(Confirmed.can_become(Shipped) && Shipped.can_become(OutForDelivery));
        assert!(OutForDelivery.can_become(Delivered) && Shipped.can_become(Delivered));
        assert!(!Shipped.can_become(Cancelled) && !Delivered.can_become(Cancelled));
        assert!(!Confirmed.can_become(Delivered) && !Delivered.can_become(DeliveryFailed));
        assert!(
            Status::ALL
                .iter()
                .filter(|s| s.is_final())
                .all(|s| { Status::ALL.iter().all(|to| !s.can_become(*to)) })
        );
    }

    #[test]
    fn addresses_are_checked() {
        let ok = Address::parse(" Ada ", "1 Rue X", Some(" "), "Paris", "75001", "fr").unwrap();
        assert_eq!((ok.name.as_str(), ok.line2.clone(), ok.country.as_str()), ("Ada", None, "FR"));
        assert!(Address::parse("", "1 Rue X", None, "Paris", "75001", "FR").is_err());
        assert!(Address::parse("Ada", "1 Rue X", None, "Paris", "75001", "France").is_err());
        assert!(Address::parse("Ada", "1 Rue X", None, "", "75001", "FR").is_err());
    }

    #[test]
    fn order_numbers_are_readable_and_keys_checked() {
        let n = order_number();
        assert!(n.starts_with("BS-") && n.len() == 11, "{n}");
        assert!(!n[3..].contains(['I', 'L', 'O', 'U']));
        assert!(idempotency_key("checkout-42").is_ok());
        assert!(idempotency_key("").is_err() && idempotency_key("a b").is_err());
    }
}
