//! A loaded supergraph: the planner built from it, the API schema clients see (for validation
//! and introspection), and where each subgraph lives.

use std::collections::HashMap;
use std::sync::Arc;

use apollo_compiler::Schema;
use apollo_compiler::validation::Valid;
use graphql_tools::parser::schema::{Definition, TypeDefinition};

use crate::planning::QueryPlanner;

/// Why a supergraph could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SupergraphError {
    /// The SDL does not parse.
    #[error("the supergraph SDL does not parse: {0}")]
    Parse(String),
    /// The planner refused it.
    #[error("the query planner cannot use this supergraph: {0}")]
    Planner(String),
    /// The API schema derived from it is not valid.
    #[error("the API schema is not valid: {0}")]
    ApiSchema(String),
    /// A subgraph has no URL.
    #[error("subgraph `{0}` has no url in @join__graph")]
    MissingUrl(String),
}

/// Everything derived from one supergraph SDL.
pub struct Supergraph {
    /// The SDL it was loaded from.
    pub sdl: String,
    /// Plans operations.
    pub planner: QueryPlanner,
    /// The schema clients see: no `@inaccessible` parts, no federation machinery.
    pub api_schema: Arc<Valid<Schema>>,
    /// Subgraph name → URL.
    pub subgraph_urls: HashMap<String, String>,
    /// Which object types each interface or union stands for.
    pub possible_types: Arc<crate::planning::PossibleTypes>,
}

impl Supergraph {
    /// Loads a Federation v2 supergraph SDL.
    pub fn load(sdl: &str) -> Result<Self, SupergraphError> {
        let document = graphql_tools::parser::parse_schema::<String>(sdl)
            .map_err(|e| SupergraphError::Parse(e.to_string()))?
            .into_static();
        let planner =
            QueryPlanner::new(&document).map_err(|e| SupergraphError::Planner(e.to_string()))?;
        let subgraph_urls = planner.subgraph_urls();
        for (name, url) in &subgraph_urls {
            if url.is_empty() {
                return Err(SupergraphError::MissingUrl(name.clone()));
            }
        }
        let api_sdl = api_sdl(&planner.consumer_schema_document());
        let api_schema = Schema::parse_and_validate(api_sdl, "api-schema.graphql")
            .map_err(|e| SupergraphError::ApiSchema(e.errors.to_string()))?;
        let possible_types = Arc::new(planner.possible_types());
        Ok(Self {
            sdl: sdl.to_string(),
            planner,
            api_schema: Arc::new(api_schema),
            subgraph_urls,
            possible_types,
        })
    }

    /// The API schema as SDL (what GraphiQL and `schema` exports show).
    pub fn api_sdl(&self) -> String {
        self.api_schema.to_string()
    }
}

/// Prints the planner's consumer schema without the introspection definitions it carries
/// (apollo-compiler defines those itself).
fn api_sdl(document: &graphql_tools::static_graphql::schema::Document) -> String {
    let mut document = document.clone();
    document.definitions.retain(|d| match d {
        Definition::TypeDefinition(t) => {
            let name = type_name(t);
            !name.starts_with("__")
                && !matches!(name, "Boolean" | "Float" | "Int" | "ID" | "String")
        }
        Definition::DirectiveDefinition(d) => {
            !matches!(d.name.as_str(), "skip" | "include" | "deprecated" | "specifiedBy" | "oneOf")
        }
        _ => true,
    });
    for definition in &mut document.definitions {
        if let Definition::TypeDefinition(TypeDefinition::Object(object)) = definition {
            object.fields.retain(|f| !f.name.starts_with("__"));
        }
    }
    document.to_string()
}

fn type_name<'a>(t: &'a TypeDefinition<'static, String>) -> &'a str {
    match t {
        TypeDefinition::Scalar(s) => &s.name,
        TypeDefinition::Object(o) => &o.name,
        TypeDefinition::Interface(i) => &i.name,
        TypeDefinition::Union(u) => &u.name,
        TypeDefinition::Enum(e) => &e.name,
        TypeDefinition::InputObject(i) => &i.name,
    }
}
