//! Full-text search on product name and description, ranked, on either backend.
//!
//! The client's text is reduced to words (letters and digits only) before it reaches the
//! search engine, so operators and quotes in it are plain text, never query syntax, and the
//! words travel as bound parameters. Each word matches as a prefix ("runn" finds "running"),
//! and all words must match. Matches in the name weigh more than matches in the description.

use entities::catalog::product;
use kernel::AppError;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, JoinType, Order, Query};
use sea_orm::{DbBackend, QueryFilter, QueryOrder, QueryTrait, Select};

/// At most this many words of a search are used.
const MAX_WORDS: usize = 12;

/// The words of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerms(Vec<String>);

impl SearchTerms {
    /// Parses a client's search text; `None` when it is blank.
    pub fn parse(raw: &str) -> Result<Option<Self>, AppError> {
        if raw.chars().count() > 200 {
            return Err(AppError::bad_input("`search` is limited to 200 characters"));
        }
        if raw.trim().is_empty() {
            return Ok(None);
        }
        let words: Vec<String> = raw
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .take(MAX_WORDS)
            .map(str::to_lowercase)
            .collect();
        Ok(Some(Self(words)))
    }

    /// True when the text held no searchable word (then nothing matches).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// SQLite FTS5 query: each word quoted and prefix-matched, all required.
    fn fts5(&self) -> String {
        self.0.iter().map(|w| format!("\"{w}\"*")).collect::<Vec<_>>().join(" ")
    }

    /// PostgreSQL `to_tsquery` text: each word prefix-matched, all required.
    fn tsquery(&self) -> String {
        self.0.iter().map(|w| format!("{w}:*")).collect::<Vec<_>>().join(" & ")
    }
}

/// Restricts `select` to products matching `terms`; with `rank`, orders by relevance first.
pub fn apply(
    mut select: Select<product::Entity>,
    backend: DbBackend,
    terms: &SearchTerms,
    rank: bool,
) -> Select<product::Entity> {
    match backend {
        DbBackend::Postgres => {
            let query = terms.tsquery();
            select = select.filter(Expr::cust_with_values(
                "\"products\".\"search\" @@ to_tsquery('english', $1)",
                [query.clone()],
            ));
            if rank {
                select = select.order_by(
                    Expr::cust_with_values(
                        "ts_rank(\"products\".\"search\", to_tsquery('english', $1))",
                        [query],
                    ),
                    Order::Desc,
                );
            }
            select
        }
        _ => {
            // The FTS5 index is joined once as a sub-query; bm25 is lower for better matches,
            // with the name column weighted ten times the description.
            let hits = Alias::new("hits");
            let subquery = Query::select()
                .column(Alias::new("product_id"))
                .expr_as(Expr::cust("bm25(product_search, 0.0, 10.0, 1.0)"), Alias::new("score"))
                .from(Alias::new("product_search"))
                .and_where(Expr::cust_with_values("product_search MATCH ?", [terms.fts5()]))
                .to_owned();
            QueryTrait::query(&mut select).join_subquery(
                JoinType::InnerJoin,
                subquery,
                hits.clone(),
                Expr::col((hits.clone(), Alias::new("product_id")))
                    .equals((product::Entity, product::Column::Id)),
            );
            if rank {
                select = select.order_by(Expr::col((hits, Alias::new("score"))), Order::Asc);
            }
            select
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_becomes_words_not_syntax() {
        let terms = SearchTerms::parse("'; DROP TABLE products; -- \"x\" OR 1=1").unwrap().unwrap();
        assert_eq!(terms.fts5(), r#""drop"* "table"* "products"* "x"* "or"* "1"* "1"*"#);
        assert_eq!(SearchTerms::parse("  ").unwrap(), None);
        assert!(SearchTerms::parse("!!!").unwrap().unwrap().is_empty());
        assert_eq!(
            SearchTerms::parse("Trail Runner").unwrap().unwrap().tsquery(),
            "trail:* & runner:*"
        );
    }
}
