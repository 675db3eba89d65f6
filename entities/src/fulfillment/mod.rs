//! The fulfillment context: one shipment per confirmed order, and its tracking events.

pub mod shipment;
pub mod tracking_event;
