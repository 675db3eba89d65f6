//! The request pipeline: parse and validate against the API schema, pick the operation, check
//! limits, coerce variables, plan (cached), execute, project. Request errors stop the
//! pipeline before any subgraph is called.

use std::sync::Arc;

use apollo_compiler::ExecutableDocument;
use apollo_compiler::executable::{Selection, SelectionSet};
use apollo_compiler::response::{GraphQLError, JsonMap, ResponseDataPathSegment};
use apollo_compiler::schema::Implementers;
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, collections::HashMap};

use crate::execution::projection::{Projection, plan::Plan};
use crate::execution::value::{Bodies, Value};
use crate::execution::{Execution, introspection};
use crate::supergraph::Supergraph;
use crate::transport::{ForwardedHeaders, Transport};

/// Limits on what one operation may ask.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Deepest field nesting allowed.
    pub max_depth: usize,
    /// Most aliases allowed in one document.
    pub max_aliases: usize,
    /// Answer `__schema` and `__type`.
    pub introspection: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_depth: 15, max_aliases: 30, introspection: true }
    }
}

/// A client's GraphQL request, parsed from HTTP.
#[derive(Debug, Default)]
pub struct GraphQLRequest {
    /// The document.
    pub query: String,
    /// Which operation to run.
    pub operation_name: Option<String>,
    /// Variable values.
    pub variables: JsonMap,
}

/// Why a request was refused before execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestErrorKind {
    /// Parse, validation, operation selection, limits or variables: a 400 under
    /// `application/graphql-response+json`.
    Invalid,
    /// A mutation over GET: 405.
    MutationOverGet,
}

/// The `data` of an executed operation.
pub enum ResponseData {
    /// As a tree (introspection, or selections that needed merging); `None` is null.
    Tree(Option<JsonMap>),
    /// Already serialised JSON; `None` is null.
    Raw(Option<Vec<u8>>),
}

/// What the pipeline produced.
pub enum Outcome {
    /// Refused before execution: errors and no `data`.
    RequestError(RequestErrorKind, Vec<GraphQLError>),
    /// Executed: `data` (possibly null) and field errors.
    Executed { data: ResponseData, errors: Vec<GraphQLError> },
}

/// The gateway: a supergraph, its subgraphs' client, and the limits.
pub struct Gateway {
    supergraph: Arc<Supergraph>,
    implementers: HashMap<Name, Implementers>,
    transport: Transport,
    limits: Limits,
    /// Validated documents by their text: validation is per document, not per request.
    documents: std::sync::Mutex<lru::LruCache<String, Arc<Valid<ExecutableDocument>>>>,
}

impl Gateway {
    /// A gateway over `supergraph`.
    pub fn new(supergraph: Arc<Supergraph>, transport: Transport, limits: Limits) -> Self {
        let implementers = supergraph.api_schema.implementers_map();
        let capacity = std::num::NonZeroUsize::new(1024).unwrap_or(std::num::NonZeroUsize::MIN);
        let documents = std::sync::Mutex::new(lru::LruCache::new(capacity));
        Self { supergraph, implementers, transport, limits, documents }
    }

    /// The loaded supergraph.
    pub fn supergraph(&self) -> &Supergraph {
        &self.supergraph
    }

    /// Runs one request. `is_get` marks a GET request (queries only).
    pub async fn execute(
        &self,
        request: GraphQLRequest,
        headers: &ForwardedHeaders,
        is_get: bool,
    ) -> Outcome {
        let schema = &self.supergraph.api_schema;
        let invalid = |errors| Outcome::RequestError(RequestErrorKind::Invalid, errors);
        let cached =
            self.documents.lock().unwrap_or_else(|p| p.into_inner()).get(&request.query).cloned();
        let document = match cached {
            Some(document) => document,
            None => match ExecutableDocument::parse_and_validate(
                schema,
                &request.query,
                "operation.graphql",
            ) {
                Ok(document) => {
                    let document = Arc::new(document);
                    let mut cache = self.documents.lock().unwrap_or_else(|p| p.into_inner());
                    cache.put(request.query.clone(), document.clone());
                    document
                }
                Err(with_errors) => {
                    return invalid(with_errors.errors.iter().map(|d| d.to_json()).collect());
                }
            },
        };
        let operation = match document.operations.get(request.operation_name.as_deref()) {
            Ok(op) => op,
            Err(_) => {
                let message = match &request.operation_name {
                    Some(name) => format!("Unknown operation named \"{name}\"."),
                    None => "Must provide operation name if query contains multiple operations."
                        .to_string(),
                };
                return invalid(vec![GraphQLError::new(message, None, &document.sources)]);
            }
        };
        if is_get && !operation.operation_type.is_query() {
            let message = "Only queries may be sent with GET; use POST for mutations.";
            return Outcome::RequestError(
                RequestErrorKind::MutationOverGet,
                vec![GraphQLError::new(message, None, &document.sources)],
            );
        }
        if let Some(error) = self.check_limits(&document, operation) {
            return invalid(vec![GraphQLError::new(error, None, &document.sources)]);
        }
        let variables = match apollo_compiler::request::coerce_variable_values(
            schema,
            operation,
            &request.variables,
        ) {
            Ok(v) => v,
            Err(e) => return invalid(vec![e.to_graphql_error(&document.sources)]),
        };
        let mut introspects = false;
        let mut concrete = false;
        for field in operation.root_fields(&document) {
            match field.name.as_str() {
                "__schema" | "__type" => introspects = true,
                "__typename" => {}
                _ => concrete = true,
            }
        }
        if introspects && !self.limits.introspection {
            return invalid(vec![GraphQLError::new(
                "Introspection is disabled.",
                None,
                &document.sources,
            )]);
        }

        let prepared = if concrete {
            // The planner knows nothing of introspection: plan the operation without it.
            let plan_query = if introspects {
                without_introspection(&document, operation)
            } else {
                request.query.clone()
            };
            match self.supergraph.planner.prepare(&plan_query, request.operation_name.as_deref()) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::error!(error = %e, "query planning failed");
                    return Outcome::Executed {
                        data: ResponseData::Tree(None),
                        errors: vec![GraphQLError::new(
                            format!("query planning failed: {e}"),
                            None,
                            &document.sources,
                        )],
                    };
                }
            }
        } else {
            None
        };
        // The subgraphs' answers: the response tree borrows from them until it is projected.
        let bodies = Bodies::default();
        let (data, mut errors) = if let Some(prepared) = &prepared {
            Execution::new(
                &self.transport,
                &bodies,
                variables.as_ref(),
                headers,
                &self.supergraph.possible_types,
            )
            .run(prepared.plan.node.as_ref())
            .await
        } else {
            (Value::Object(Vec::new()), Vec::new())
        };
        // A null caused by a subgraph error is already explained by that error.
        let covered: Vec<Vec<ResponseDataPathSegment>> =
            errors.iter().map(|e| e.path.clone()).collect();
        let explained =
            |e: &GraphQLError| covered.iter().any(|p| !p.is_empty() && e.path.starts_with(p));

        if let (Some(prepared), false) = (&prepared, introspects) {
            let mut projection = Projection::new(schema, &self.implementers, variables.as_ref());
            let root = operation.object_type().as_str();
            let selections = &prepared
                .projection
                .get_or_init(|| {
                    Plan::build(schema, &self.implementers, root, &prepared.operation.selection_set)
                })
                .root;
            let mut buf = Vec::with_capacity(bodies.total_len() / 4 * 5 + 4096);
            let data = if prepared.repeats_keys {
                ResponseData::Tree(projection.run(root, selections, &data))
            } else if projection.write(root, selections, &data, &mut buf) {
                ResponseData::Raw(Some(buf))
            } else {
                ResponseData::Raw(None)
            };
            errors.extend(projection.errors.into_iter().filter(|e| !explained(e)));
            return Outcome::Executed { data, errors };
        }
        match introspection::project(
            schema,
            &self.implementers,
            &document,
            operation,
            &variables,
            &data.to_json(),
            introspects,
        ) {
            Ok(response) => {
                errors.extend(response.errors.into_iter().filter(|e| !explained(e)));
                Outcome::Executed { data: ResponseData::Tree(response.data), errors }
            }
            Err(error) => invalid(vec![*error]),
        }
    }

    fn check_limits(
        &self,
        document: &ExecutableDocument,
        operation: &apollo_compiler::executable::Operation,
    ) -> Option<String> {
        let depth = depth(document, &operation.selection_set, 0);
        if depth > self.limits.max_depth {
            return Some(format!(
                "The operation is {depth} levels deep, above the limit of {}.",
                self.limits.max_depth
            ));
        }
        let aliases = aliases(document, &operation.selection_set);
        if aliases > self.limits.max_aliases {
            return Some(format!(
                "The operation uses {aliases} aliases, above the limit of {}.",
                self.limits.max_aliases
            ));
        }
        None
    }
}

/// The document with `__schema` and `__type` removed from the operation's root selection.
fn without_introspection(
    document: &ExecutableDocument,
    operation: &apollo_compiler::executable::Operation,
) -> String {
    let mut document = document.clone();
    let operation = match &operation.name {
        Some(name) => document.operations.named.get_mut(name),
        None => document.operations.anonymous.as_mut(),
    };
    if let Some(operation) = operation {
        operation.make_mut().selection_set.selections.retain(|s| {
            !matches!(s, Selection::Field(f) if matches!(f.name.as_str(), "__schema" | "__type"))
        });
    }
    document.to_string()
}

fn depth(document: &ExecutableDocument, set: &SelectionSet, level: usize) -> usize {
    set.selections
        .iter()
        .map(|selection| match selection {
            Selection::Field(f) if f.selection_set.selections.is_empty() => level + 1,
            Selection::Field(f) => depth(document, &f.selection_set, level + 1),
            Selection::InlineFragment(i) => depth(document, &i.selection_set, level),
            Selection::FragmentSpread(s) => document
                .fragments
                .get(&s.fragment_name)
                .map_or(level, |f| depth(document, &f.selection_set, level)),
        })
        .max()
        .unwrap_or(level)
}

fn aliases(document: &ExecutableDocument, set: &SelectionSet) -> usize {
    set.selections
        .iter()
        .map(|selection| match selection {
            Selection::Field(f) => {
                usize::from(f.alias.is_some()) + aliases(document, &f.selection_set)
            }
            Selection::InlineFragment(i) => aliases(document, &i.selection_set),
            Selection::FragmentSpread(s) => document
                .fragments
                .get(&s.fragment_name)
                .map_or(0, |f| aliases(document, &f.selection_set)),
        })
        .sum()
}
