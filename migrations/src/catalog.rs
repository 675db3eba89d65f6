//! The catalog context's schema: categories, products (with full-text search), reviews.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::common::{ForgetPublishedOutbox, PendingOutboxIndex, col, create_outbox};

/// Runs the catalog migrations in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Catalog),
            Box::new(M0002ProductActive),
            Box::new(PendingOutboxIndex),
            Box::new(ForgetPublishedOutbox),
        ]
    }
}

/// Categories, products, reviews, product search and the outbox.
struct M0001Catalog;

impl MigrationName for M0001Catalog {
    fn name(&self) -> &str {
        "m0001_catalog"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Catalog {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(col("categories"))
                    .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("parent_id")).uuid().null())
                    .col(ColumnDef::new(col("slug")).string().not_null().unique_key())
                    .col(ColumnDef::new(col("name")).string().not_null())
                    .col(ColumnDef::new(col("position")).integer().not_null().default(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(col("categories"), col("parent_id"))
                            .to(col("categories"), col("id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(col("products"))
                    .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("sku")).string().not_null().unique_key())
                    .col(ColumnDef::new(col("slug")).string().not_null().unique_key())
                    .col(ColumnDef::new(col("name")).string().not_null())
                    .col(ColumnDef::new(col("description")).text().not_null())
                    .col(ColumnDef::new(col("price_minor")).big_integer().not_null())
                    .col(ColumnDef::new(col("currency")).string_len(3).not_null())
                    .col(ColumnDef::new(col("category_id")).uuid().not_null())
                    .col(ColumnDef::new(col("images")).json_binary().not_null())
                    .col(ColumnDef::new(col("attributes")).json_binary().not_null())
                    .col(ColumnDef::new(col("rating_count")).integer().not_null().default(0))
                    .col(ColumnDef::new(col("rating_sum")).big_integer().not_null().default(0))
                    .col(ColumnDef::new(col("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(col("updated_at")).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(col("products"), col("category_id"))
                            .to(col("categories"), col("id")),
                    )
                    .check(Expr::col(col("price_minor")).gte(0))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("products_category", "category_id"),
            ("products_price", "price_minor"),
            ("products_created", "created_at"),
        ] {
            manager
                .create_index(
                    Index::create().name(name).table(col("products")).col(col(column)).to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(col("reviews"))
                    .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(col("product_id")).uuid().not_null())
                    .col(ColumnDef::new(col("customer_id")).uuid().not_null())
                    .col(ColumnDef::new(col("rating")).integer().not_null())
                    .col(ColumnDef::new(col("title")).string().not_null())
                    .col(ColumnDef::new(col("body")).text().not_null())
                    .col(ColumnDef::new(col("created_at")).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(col("reviews"), col("product_id"))
                            .to(col("products"), col("id")),
                    )
                    .check(Expr::col(col("rating")).between(1, 5))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("reviews_one_per_customer")
                    .table(col("reviews"))
                    .col(col("product_id"))
                    .col(col("customer_id"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        create_search(manager).await?;
        create_outbox(manager).await
    }
}

/// Ranked full-text search on name and description: an FTS5 index kept in step by triggers on
/// SQLite, a weighted generated `tsvector` with a GIN index on PostgreSQL.
async fn create_search(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let statements: &[&str] = match manager.get_database_backend() {
        DbBackend::Sqlite => &[
            "CREATE VIRTUAL TABLE product_search USING fts5(\
                product_id UNINDEXED, name, description, tokenize = 'porter unicode61')",
            "CREATE TRIGGER products_search_insert AFTER INSERT ON products BEGIN \
                INSERT INTO product_search (product_id, name, description) \
                VALUES (new.id, new.name, new.description); END",
            "CREATE TRIGGER products_search_update AFTER UPDATE OF name, description ON products \
                BEGIN DELETE FROM product_search WHERE product_id = old.id; \
                INSERT INTO product_search (product_id, name, description) \
                VALUES (new.id, new.name, new.description); END",
            "CREATE TRIGGER products_search_delete AFTER DELETE ON products BEGIN \
                DELETE FROM product_search WHERE product_id = old.id; END",
        ],
        DbBackend::Postgres => &[
            "ALTER TABLE products ADD COLUMN search tsvector GENERATED ALWAYS AS (\
                setweight(to_tsvector('english', name), 'A') || \
                setweight(to_tsvector('english', description), 'B')) STORED",
            "CREATE INDEX products_search ON products USING GIN (search)",
        ],
        other => return Err(DbErr::Custom(format!("unsupported database backend {other:?}"))),
    };
    for sql in statements {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}

/// Products can be taken off sale (`active = false`) without being deleted: orders and carts
/// still refer to them.
struct M0002ProductActive;

impl MigrationName for M0002ProductActive {
    fn name(&self) -> &str {
        "m0002_product_active"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002ProductActive {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(col("products"))
                    .add_column(ColumnDef::new(col("active")).boolean().not_null().default(true))
                    .to_owned(),
            )
            .await
    }
}
