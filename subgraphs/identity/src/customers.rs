//! The `Customer` type and its loader. Personal data (e-mail, full name, roles) is shown only
//! to the customer themself and to administrators; everyone else sees a display name.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};
use entities::identity::customer;
use kernel::AppError;
use kernel::auth::{Role, authentication};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::accounts::roles_of;

/// A customer account, as seen by someone.
pub struct Customer(pub customer::Model, pub Viewer);

/// Who is looking at a [`Customer`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Whoever the request's token says (resolved per field).
    Caller,
    /// The customer themself, just signed in or up by this very request.
    Owner,
}

impl Customer {
    /// The account as the request's caller sees it.
    pub fn seen_by_caller(row: customer::Model) -> Self {
        Self(row, Viewer::Caller)
    }

    fn private_field(&self, ctx: &Context<'_>) -> Result<()> {
        if self.1 == Viewer::Owner {
            return Ok(());
        }
        let caller = authentication(ctx).require()?;
        if caller.speaks_for(self.0.id) {
            Ok(())
        } else {
            Err(AppError::Forbidden("only the customer or an administrator may see this".into())
                .into())
        }
    }
}

#[Object]
impl Customer {
    /// Customer id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Public name: first name and last initial ("Ada L."), as shown on reviews.
    async fn display_name(&self) -> String {
        display_name(&self.0.name)
    }

    /// Full name (the customer or an administrator only).
    async fn name(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        self.private_field(ctx)?;
        Ok(Some(self.0.name.clone()))
    }

    /// E-mail address (the customer or an administrator only).
    async fn email(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        self.private_field(ctx)?;
        Ok(Some(self.0.email.clone()))
    }

    /// Roles (the customer or an administrator only).
    async fn roles(&self, ctx: &Context<'_>) -> Result<Option<Vec<Role>>> {
        self.private_field(ctx)?;
        Ok(Some(roles_of(&self.0)))
    }

    /// When the account was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// "Ada Lovelace" → "Ada L."; a single word stays as it is.
pub fn display_name(name: &str) -> String {
    let mut words = name.split_whitespace();
    match (words.next(), words.last()) {
        (Some(first), Some(last)) => {
            let initial: String = last.chars().take(1).collect();
            format!("{first} {initial}.")
        }
        (Some(first), None) => first.to_string(),
        _ => String::new(),
    }
}

/// Loads customers by id.
pub struct CustomerLoader(pub DatabaseConnection);

impl Loader<Uuid> for CustomerLoader {
    type Value = customer::Model;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let rows = customer::Entity::find()
            .filter(customer::Column::Id.is_in(keys.iter().copied()))
            .all(&self.0)
            .await
            .map_err(|e| Arc::new(AppError::from(e)))?;
        Ok(rows.into_iter().map(|c| (c.id, c)).collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn display_names_hide_surnames() {
        assert_eq!(super::display_name("Ada Lovelace"), "Ada L.");
        assert_eq!(super::display_name("Ada King Lovelace"), "Ada L.");
        assert_eq!(super::display_name("Cher"), "Cher");
    }
}
