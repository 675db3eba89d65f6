//! The payments context: cards kept as tokens, and the payments made with them.

pub mod card_token;
pub mod payment;
pub mod payment_method;
