//! Catalog rows: categories (a tree), products, and reviews.

pub mod category;
pub mod product;
pub mod review;
