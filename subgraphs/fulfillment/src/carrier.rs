//! The simulated carrier's rules: the steps a parcel takes, what each says on the tracking
//! page, and tracking numbers.

use kernel::{AppError, AppResult};

/// Where a parcel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum ShipmentStatus {
    /// In the warehouse, being packed.
    Preparing,
    /// Handed to the carrier.
    Shipped,
    /// On the van today.
    OutForDelivery,
    /// At the door.
    Delivered,
    /// The carrier could not deliver it.
    Failed,
    /// The order was cancelled before the parcel left.
    Cancelled,
}

impl ShipmentStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ShipmentStatus::Preparing => "PREPARING",
            ShipmentStatus::Shipped => "SHIPPED",
            ShipmentStatus::OutForDelivery => "OUT_FOR_DELIVERY",
            ShipmentStatus::Delivered => "DELIVERED",
            ShipmentStatus::Failed => "FAILED",
            ShipmentStatus::Cancelled => "CANCELLED",
        }
    }

    /// From storage (an unknown value is an internal error).
    pub fn parse(text: &str) -> AppResult<Self> {
        Ok(match text {
            "PREPARING" => ShipmentStatus::Preparing,
            "SHIPPED" => ShipmentStatus::Shipped,
            "OUT_FOR_DELIVERY" => ShipmentStatus::OutForDelivery,
            "DELIVERED" => ShipmentStatus::Delivered,
            "FAILED" => ShipmentStatus::Failed,
            "CANCELLED" => ShipmentStatus::Cancelled,
            other => {
                return Err(AppError::internal(anyhow::anyhow!("unknown shipment status {other}")));
            }
        })
    }

    /// The carrier's next step from here, if the parcel is still on its way.
    pub fn next(self) -> Option<Self> {
        match self {
            ShipmentStatus::Preparing => Some(ShipmentStatus::Shipped),
            ShipmentStatus::Shipped => Some(ShipmentStatus::OutForDelivery),
            ShipmentStatus::OutForDelivery => Some(ShipmentStatus::Delivered),
            _ => None,
        }
    }

    /// Whether a delivery can fail from here: only once the carrier has the parcel.
    pub fn can_fail(self) -> bool {
        matches!(self, ShipmentStatus::Shipped | ShipmentStatus::OutForDelivery)
    }

    /// The event announcing that a parcel entered this status.
    pub fn event_type(self) -> &'static str {
        match self {
            ShipmentStatus::Preparing => "shipment.created",
            ShipmentStatus::Shipped => "shipment.shipped",
            ShipmentStatus::OutForDelivery => "shipment.out_for_delivery",
            ShipmentStatus::Delivered => "shipment.delivered",
            ShipmentStatus::Failed => "shipment.failed",
            ShipmentStatus::Cancelled => "shipment.cancelled",
        }
    }

    /// What the tracking page says when a parcel enters this status.
    pub fn describe(self, carrier: &str, reason: Option<&str>) -> String {
        match self {
            ShipmentStatus::Preparing => "Order received; the parcel is being prepared".into(),
            ShipmentStatus::Shipped => format!("Handed to {carrier}"),
            ShipmentStatus::OutForDelivery => "Out for delivery".into(),
            ShipmentStatus::Delivered => "Delivered".into(),
            ShipmentStatus::Failed => {
                format!("Delivery failed: {}", reason.unwrap_or("the carrier gave no reason"))
            }
            ShipmentStatus::Cancelled => "Cancelled: the order was cancelled".into(),
        }
    }
}

/// A new tracking number: `BSP` and twelve digits.
pub fn tracking_number() -> String {
    let digits: u64 = rand::random::<u64>() % 1_000_000_000_000;
    format!("BSP{digits:012}")
}

/// Checks an administrator's reason for a failed delivery.
pub fn failure_reason(text: &str) -> AppResult<String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > 200 || text.chars().any(char::is_control) {
        return Err(AppError::bad_input("the reason must be 1 to 200 characters on one line"));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::ShipmentStatus::*;
    use super::*;

    #[test]
    fn a_parcel_goes_forward_only_and_fails_only_once_shipped() {
        assert_eq!(Preparing.next(), Some(Shipped));
        assert_eq!(Shipped.next(), Some(OutForDelivery));
        assert_eq!(OutForDelivery.next(), Some(Delivered));
        assert_eq!(Delivered.next(), None);
        assert_eq!(Failed.next(), None);
        assert_eq!(Cancelled.next(), None);
        assert!(!Preparing.can_fail() && Shipped.can_fail() && !Delivered.can_fail());
        for s in [Preparing, Shipped, OutForDelivery, Delivered, Failed, Cancelled] {
            assert_eq!(ShipmentStatus::parse(s.as_str()).unwrap(), s);
        }
    }

    #[test]
    fn tracking_numbers_and_reasons_are_checked() {
        let n = tracking_number();
        assert!(
            n.starts_with("BSP") && n.len() == 15 && n[3..].bytes().all(|b| b.is_ascii_digit())
        );
        assert!(failure_reason("  nobody home ").is_ok_and(|r| r == "nobody home"));
        assert!(failure_reason(" ").is_err() && failure_reason(&"x".repeat(201)).is_err());
        assert!(failure_reason("a\nb").is_err());
    }
}
