//! The notifications context: the e-mails written to customers, and their delivery.

pub mod mail;
