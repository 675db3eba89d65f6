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
use crate::execution::{Execution, introspection, split_subscription, subscription_request};
use crate::planning::PreparedOperation;
use crate::supergraph::Supergraph;
use crate::transport::{ForwardedHeaders, Transport};
use crate::upstream::{Upstream, Upstreams};

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

/// What a request on a streaming transport became.
pub enum Subscribed {
    /// One result: a query or mutation, or a subscription refused before it began.
    Once(Outcome),
    /// One result per event.
    Stream(futures::stream::BoxStream<'static, Outcome>),
}

/// An open subscription's fixed parts, shared by its events.
struct Live {
    gateway: Arc<Gateway>,
    prepared: Arc<PreparedOperation>,
    variables: Valid<JsonMap>,
    headers: ForwardedHeaders,
    root: String,
    service: String,
}

impl Live {
    /// One event: the rest of the plan run from it, then projected.
    async fn event(&self, payload: axum::body::Bytes) -> Outcome {
        let gateway = &self.gateway;
        let Some((_, rest)) = self.prepared.plan.node.as_ref().and_then(split_subscription) else {
            return failed("the subscription could not be planned");
        };
        let bodies = Bodies::default();
        let execution = Execution::new(
            &gateway.transport,
            &bodies,
            self.variables.as_ref(),
            &self.headers,
            &gateway.supergraph.possible_types,
        );
        execution.seed(&self.service, payload);
        let (data, errors) = execution.run_rest(&rest).await;
        gateway.project(&self.prepared, &self.root, self.variables.as_ref(), &bodies, &data, errors)
    }
}

/// A result with no data and one error.
fn failed(message: &str) -> Outcome {
    let error = GraphQLError::new(message, None, &Default::default());
    Outcome::Executed { data: ResponseData::Tree(None), errors: vec![error] }
}

/// A request that passed every check before planning.
struct Checked {
    document: Arc<Valid<ExecutableDocument>>,
    variables: Valid<JsonMap>,
    introspects: bool,
    concrete: bool,
    is_subscription: bool,
}

impl Checked {
    /// The operation the request names (found when checked).
    fn operation<'d>(
        &'d self,
        request: &GraphQLRequest,
    ) -> Result<&'d apollo_compiler::Node<apollo_compiler::executable::Operation>, Outcome> {
        self.document.operations.get(request.operation_name.as_deref()).map_err(|_| {
            let error = GraphQLError::new("unknown operation", None, &self.document.sources);
            Outcome::RequestError(RequestErrorKind::Invalid, vec![error])
        })
    }
}

/// The gateway: a supergraph, its subgraphs' client, and the limits.
pub struct Gateway {
    supergraph: Arc<Supergraph>,
    implementers: HashMap<Name, Implementers>,
    transport: Transport,
    upstreams: Upstreams,
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
        let upstreams = Upstreams::new(Arc::new(supergraph.subgraph_urls.clone()));
        Self { supergraph, implementers, transport, upstreams, limits, documents }
    }

    /// The loaded supergraph.
    pub fn supergraph(&self) -> &Supergraph {
        &self.supergraph
    }

    /// Parses, validates and checks a request, picks its operation and coerces its
    /// variables: everything before planning. A refusal is the outcome to answer with.
    fn check(&self, request: &GraphQLRequest, is_get: bool) -> Result<Checked, Outcome> {
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
                    return Err(invalid(with_errors.errors.iter().map(|d| d.to_json()).collect()));
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
                return Err(invalid(vec![GraphQLError::new(message, None, &document.sources)]));
            }
        };
        if is_get && !operation.operation_type.is_query() {
            let message = "Only queries may be sent with GET; use POST for mutations.";
            return Err(Outcome::RequestError(
                RequestErrorKind::MutationOverGet,
                vec![GraphQLError::new(message, None, &document.sources)],
            ));
        }
        if let Some(error) = self.check_limits(&document, operation) {
            return Err(invalid(vec![GraphQLError::new(error, None, &document.sources)]));
        }
        let variables = match apollo_compiler::request::coerce_variable_values(
            schema,
            operation,
            &request.variables,
        ) {
            Ok(v) => v,
            Err(e) => return Err(invalid(vec![e.to_graphql_error(&document.sources)])),
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
            return Err(invalid(vec![GraphQLError::new(
                "Introspection is disabled.",
                None,
                &document.sources,
            )]));
        }
        let is_subscription = operation.operation_type.is_subscription();
        Ok(Checked { document, variables, introspects, concrete, is_subscription })
    }

    /// Plans a checked operation (cached); `Err` is the outcome of a failed planning.
    fn plan(
        &self,
        request: &GraphQLRequest,
        checked: &Checked,
    ) -> Result<Option<Arc<PreparedOperation>>, Outcome> {
        let (document, operation) = (&checked.document, checked.operation(request)?);
        let (introspects, concrete) = (checked.introspects, checked.concrete);
        if concrete {
            // The planner knows nothing of introspection: plan the operation without it.
            let plan_query = if introspects {
                without_introspection(document, operation)
            } else {
                request.query.clone()
            };
            match self.supergraph.planner.prepare(&plan_query, request.operation_name.as_deref()) {
                Ok(p) => Ok(Some(p)),
                Err(e) => {
                    tracing::error!(error = %e, "query planning failed");
                    Err(Outcome::Executed {
                        data: ResponseData::Tree(None),
                        errors: vec![GraphQLError::new(
                            format!("query planning failed: {e}"),
                            None,
                            &document.sources,
                        )],
                    })
                }
            }
        } else {
            Ok(None)
        }
    }

    /// Runs one request. `is_get` marks a GET request (queries only).
    pub async fn execute(
        &self,
        request: GraphQLRequest,
        headers: &ForwardedHeaders,
        is_get: bool,
    ) -> Outcome {
        let checked = match self.check(&request, is_get) {
            Ok(checked) => checked,
            Err(outcome) => return outcome,
        };
        let prepared = match self.plan(&request, &checked) {
            Ok(prepared) => prepared,
            Err(outcome) => return outcome,
        };
        let operation = match checked.operation(&request) {
            Ok(operation) => operation,
            Err(outcome) => return outcome,
        };
        let (document, variables, introspects) =
            (&checked.document, &checked.variables, checked.introspects);
        let schema = &self.supergraph.api_schema;
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
            let root = operation.object_type().as_str();
            return self.project(prepared, root, variables, &bodies, &data, errors);
        }
        match introspection::project(
            schema,
            &self.implementers,
            document,
            operation,
            variables,
            &data.to_json(),
            introspects,
        ) {
            Ok(response) => {
                errors.extend(response.errors.into_iter().filter(|e| !explained(e)));
                Outcome::Executed { data: ResponseData::Tree(response.data), errors }
            }
            Err(error) => Outcome::RequestError(RequestErrorKind::Invalid, vec![*error]),
        }
    }

    /// The client's selection out of the merged tree, with GraphQL's null propagation.
    fn project<'v>(
        &self,
        prepared: &PreparedOperation,
        root: &str,
        variables: &JsonMap,
        bodies: &Bodies,
        data: &Value<'v>,
        mut errors: Vec<GraphQLError>,
    ) -> Outcome {
        let schema = &self.supergraph.api_schema;
        // A null caused by a subgraph error is already explained by that error.
        let covered: Vec<Vec<ResponseDataPathSegment>> =
            errors.iter().map(|e| e.path.clone()).collect();
        let explained =
            |e: &GraphQLError| covered.iter().any(|p| !p.is_empty() && e.path.starts_with(p));
        let mut projection = Projection::new(schema, &self.implementers, variables);
        let selections = &prepared
            .projection
            .get_or_init(|| {
                Plan::build(schema, &self.implementers, root, &prepared.operation.selection_set)
            })
            .root;
        let mut buf = Vec::with_capacity(bodies.total_len() / 4 * 5 + 4096);
        let data = if prepared.repeats_keys {
            ResponseData::Tree(projection.run(root, selections, data))
        } else if projection.write(root, selections, data, &mut buf) {
            ResponseData::Raw(Some(buf))
        } else {
            ResponseData::Raw(None)
        };
        errors.extend(projection.errors.into_iter().filter(|e| !explained(e)));
        Outcome::Executed { data, errors }
    }

    /// Starts a subscription: checked and planned like any operation, its primary fetch
    /// opened on its subgraph over WebSocket, and for each event the rest of the plan run
    /// and the client's selection projected. A query or mutation sent this way gives one
    /// result. The stream ends when the subgraph ends it, after an error, or when the
    /// subgraph connection drops (with an error saying so).
    pub async fn subscribe(
        self: &Arc<Self>,
        request: GraphQLRequest,
        headers: ForwardedHeaders,
    ) -> Subscribed {
        let checked = match self.check(&request, false) {
            Ok(checked) => checked,
            Err(outcome) => return Subscribed::Once(outcome),
        };
        if !checked.is_subscription {
            return Subscribed::Once(self.execute(request, &headers, false).await);
        }
        let prepared = match self.plan(&request, &checked) {
            Ok(Some(prepared)) => prepared,
            Ok(None) => return Subscribed::Once(failed("a subscription must select a field")),
            Err(outcome) => return Subscribed::Once(outcome),
        };
        let Some((primary, _)) = prepared.plan.node.as_ref().and_then(split_subscription) else {
            return Subscribed::Once(failed("the subscription could not be planned"));
        };
        let body = subscription_request(primary, checked.variables.as_ref());
        let service = primary.service_name.clone();
        let upstream =
            match self.upstreams.subscribe(&service, headers.authorization.as_ref(), &body).await {
                Ok(upstream) => upstream,
                Err(error) => {
                    tracing::warn!(%error, "opening a subscription failed");
                    return Subscribed::Once(failed(&error.to_string()));
                }
            };
        let root = match checked.operation(&request) {
            Ok(operation) => operation.object_type().to_string(),
            Err(outcome) => return Subscribed::Once(outcome),
        };
        let live = Arc::new(Live {
            gateway: self.clone(),
            prepared,
            variables: checked.variables,
            headers,
            root,
            service,
        });
        let stream = futures::stream::unfold(Some(upstream), move |upstream| {
            let live = live.clone();
            async move {
                let mut upstream = upstream?;
                match upstream.next().await? {
                    Upstream::Next(payload) => Some((live.event(payload).await, Some(upstream))),
                    Upstream::Error(payload) => {
                        let errors: Vec<GraphQLError> =
                            serde_json::from_slice(&payload).unwrap_or_default();
                        let errors = if errors.is_empty() {
                            vec![GraphQLError::new(
                                "the subscription failed",
                                None,
                                &Default::default(),
                            )]
                        } else {
                            errors
                        };
                        Some((Outcome::Executed { data: ResponseData::Tree(None), errors }, None))
                    }
                    Upstream::Complete => None,
                    Upstream::Dropped(reason) => {
                        let mut error = GraphQLError::new(
                            format!(
                                "the connection to subgraph `{}` was lost: {reason}",
                                live.service
                            ),
                            None,
                            &Default::default(),
                        );
                        error
                            .extensions
                            .insert("code", serde_json_bytes::json!("SUBSCRIPTION_UPSTREAM_LOST"));
                        Some((
                            Outcome::Executed {
                                data: ResponseData::Tree(None),
                                errors: vec![error],
                            },
                            None,
                        ))
                    }
                }
            }
        });
        Subscribed::Stream(Box::pin(stream))
    }

    /// Open subgraph subscription connections (for tests and metrics).
    pub fn upstream_connections(&self) -> usize {
        self.upstreams.open_connections()
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
