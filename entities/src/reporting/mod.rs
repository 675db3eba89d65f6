//! The reporting context: a read model of sales built from events only, and the events it
//! was built from (so that it can be rebuilt).

pub mod event;
pub mod sale;
pub mod sale_line;
