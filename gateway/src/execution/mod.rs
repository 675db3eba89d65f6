//! Executing a query plan: fetches to subgraphs (in sequence or in parallel as the plan says),
//! entity representations written from what earlier fetches returned, and every result merged
//! into one response tree whose values borrow from the subgraphs' bodies ([`value`]). The
//! client's exact selection is then projected from that tree by [`projection`], with
//! GraphQL's null propagation.

pub mod data;
mod entities;
pub mod introspection;
pub mod projection;
pub mod value;

use std::sync::Mutex;

use apollo_compiler::response::{GraphQLError, JsonMap, JsonValue};
use futures::future::BoxFuture;
use serde_json_bytes::json;

use crate::planning::{BatchFetchNode, FetchNode, FlattenNodePathSegment, OperationKind, PlanNode};
use crate::transport::{SubgraphRequest, SubgraphResponse, Transport, TransportError};
use data::{PathElem, collect_entities, representation};
use entities::{Representations, entity_error_path, take_list};
use value::{Bodies, Value};

/// One execution of one plan. Its values borrow from the plan and from `bodies` (`'a`).
pub struct Execution<'a> {
    transport: &'a Transport,
    bodies: &'a Bodies,
    variables: &'a JsonMap,
    headers: &'a crate::transport::ForwardedHeaders,
    possible: &'a crate::planning::PossibleTypes,
    data: Mutex<Value<'a>>,
    errors: Mutex<Vec<GraphQLError>>,
}

/// A subgraph's GraphQL response, parsed.
struct Parsed<'a> {
    data: Option<Value<'a>>,
    errors: Vec<Value<'a>>,
}

/// Reads a subgraph's answer as a GraphQL response, borrowing from its body.
fn parse_response(status: u16, body: &[u8]) -> Result<Parsed<'_>, TransportError> {
    let success = (200..300).contains(&status);
    let invalid = |what: String| {
        if success { TransportError::InvalidResponse(what) } else { TransportError::Status(status) }
    };
    let text = std::str::from_utf8(body).map_err(|_| invalid("not UTF-8".into()))?;
    let Value::Object(fields) = value::parse(text).map_err(|e| invalid(e.to_string()))? else {
        return Err(invalid("not a JSON object".into()));
    };
    let mut parsed = Parsed { data: None, errors: Vec::new() };
    for (key, value) in fields {
        match (key, value) {
            ("data", Value::Null) => {}
            ("data", data) => parsed.data = Some(data),
            ("errors", Value::Array(errors)) => parsed.errors = errors,
            _ => {}
        }
    }
    if parsed.data.is_none() && parsed.errors.is_empty() {
        return Err(invalid("neither data nor errors".into()));
    }
    Ok(parsed)
}

/// The start of a subgraph request body: the operation, and the opening of `variables`.
fn request_head(query: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(query.len() + 256);
    body.extend_from_slice(b"{\"query\":");
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut body, query);
    body.extend_from_slice(b",\"variables\":{");
    body
}

/// Adds one variable to a body started by [`request_head`].
fn push_variable(body: &mut Vec<u8>, name: &str, value: impl FnOnce(&mut Vec<u8>)) {
    if body.last() != Some(&b'{') {
        body.push(b',');
    }
    let _ = serde_json::to_writer(&mut *body, name);
    body.push(b':');
    value(body);
}

impl<'a> Execution<'a> {
    /// An execution with coerced `variables`, forwarding `headers` to subgraphs and keeping
    /// their answers in `bodies`.
    pub fn new(
        transport: &'a Transport,
        bodies: &'a Bodies,
        variables: &'a JsonMap,
        headers: &'a crate::transport::ForwardedHeaders,
        possible: &'a crate::planning::PossibleTypes,
    ) -> Self {
        Self {
            transport,
            bodies,
            variables,
            headers,
            possible,
            data: Mutex::new(Value::Object(Vec::new())),
            errors: Mutex::new(Vec::new()),
        }
    }

    /// Runs the plan; returns the merged data and the subgraph errors (at client paths).
    pub async fn run(self, node: Option<&'a PlanNode>) -> (Value<'a>, Vec<GraphQLError>) {
        if let Some(node) = node {
            self.node(node).await;
        }
        let data = self.data.into_inner().unwrap_or_else(|p| p.into_inner());
        let errors = self.errors.into_inner().unwrap_or_else(|p| p.into_inner());
        (data, errors)
    }

    /// Takes one event of a subscription (a subgraph's `next` payload, a GraphQL response)
    /// as the result of the plan's primary fetch: its data becomes the tree the rest of the
    /// plan fills in.
    pub fn seed(&self, service: &str, payload: axum::body::Bytes) {
        match parse_response(200, self.bodies.keep(payload)) {
            Ok(parsed) => {
                if let Some(returned) = parsed.data {
                    let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
                    data::deep_merge(&mut data, returned);
                }
                self.push_errors(&parsed.errors, service, |p| Some(p.to_vec()));
            }
            Err(err) => self.error(format!("subgraph `{service}` failed: {err}"), Some(service)),
        }
    }

    /// Runs the plan's nodes after a subscription's primary fetch.
    pub async fn run_rest(self, rest: &[&'a PlanNode]) -> (Value<'a>, Vec<GraphQLError>) {
        for node in rest {
            self.node(node).await;
        }
        let data = self.data.into_inner().unwrap_or_else(|p| p.into_inner());
        let errors = self.errors.into_inner().unwrap_or_else(|p| p.into_inner());
        (data, errors)
    }

    fn node<'n>(&'n self, node: &'a PlanNode) -> BoxFuture<'n, ()> {
        Box::pin(async move {
            match node {
                PlanNode::Sequence(seq) => {
                    for n in &seq.nodes {
                        self.node(n).await;
                    }
                }
                PlanNode::Parallel(par) => {
                    futures::future::join_all(par.nodes.iter().map(|n| self.node(n))).await;
                }
                PlanNode::Condition(cond) => {
                    let on = matches!(
                        self.variables.get(cond.condition.as_str()),
                        Some(JsonValue::Bool(true))
                    );
                    let branch = if on { &cond.if_clause } else { &cond.else_clause };
                    if let Some(branch) = branch {
                        self.node(branch).await;
                    }
                }
                PlanNode::Fetch(fetch) => self.fetch(fetch, &[]).await,
                PlanNode::Flatten(flatten) => match flatten.node.as_ref() {
                    PlanNode::Fetch(fetch) => self.fetch(fetch, flatten.path.as_slice()).await,
                    other => {
                        self.error(format!("unsupported node under Flatten: {}", kind(other)), None)
                    }
                },
                PlanNode::BatchFetch(batch) => self.batch_fetch(batch).await,
                PlanNode::Subscription(_) | PlanNode::Defer(_) => {
                    self.error(format!("{} is not supported by this gateway yet", kind(node)), None)
                }
            }
        })
    }

    fn error(&self, message: String, service: Option<&str>) {
        let mut error = GraphQLError::new(message, None, &Default::default());
        if let Some(service) = service {
            error.extensions.insert("code", json!("SUBGRAPH_ERROR"));
            error.extensions.insert("serviceName", json!(service));
        }
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).push(error);
    }

    /// A request body with the operation and the client variables it uses.
    fn request_body(
        &self,
        query: &str,
        usages: Option<&std::collections::BTreeSet<String>>,
    ) -> Vec<u8> {
        let mut body = request_head(query);
        for name in usages.into_iter().flatten() {
            if let Some(value) = self.variables.get(name.as_str()) {
                push_variable(&mut body, name, |b| {
                    let _ = serde_json::to_writer(b, value);
                });
            }
        }
        body
    }

    /// Sends a fetch and parses its answer; a failure is recorded against the subgraph.
    async fn send(&self, service: &str, body: Vec<u8>, query: bool) -> Option<Parsed<'a>> {
        let request = SubgraphRequest { service, body, headers: self.headers, dedupe: query };
        let result = match self.transport.execute(request).await {
            Ok(SubgraphResponse { status, body }) => parse_response(status, self.bodies.keep(body)),
            Err(err) => Err(err),
        };
        match result {
            Ok(parsed) => Some(parsed),
            Err(err) => {
                self.error(format!("subgraph `{service}` failed: {err}"), Some(service));
                None
            }
        }
    }

    /// A root fetch (empty `path`) or an entity fetch under a Flatten path.
    async fn fetch(&self, fetch: &'a FetchNode, path: &'a [FlattenNodePathSegment]) {
        let mut body =
            self.request_body(&fetch.operation.document_str, fetch.variable_usages.as_ref());
        let entities = if let Some(requires) = &fetch.requires {
            let mut reps = Representations::default();
            let paths = {
                let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
                let found = collect_entities(&data, path, self.possible);
                let mut paths = Vec::with_capacity(found.len());
                for (entity_path, entity) in found {
                    if let Some(rep) = representation(
                        entity,
                        &requires.items,
                        fetch.input_rewrites.as_deref(),
                        self.possible,
                    ) {
                        paths.push((entity_path, reps.index_of(&rep)));
                    }
                }
                paths
            };
            if reps.len() == 0 {
                return;
            }
            let reps = reps.into_json();
            push_variable(&mut body, "representations", |b| b.extend_from_slice(&reps));
            Some(paths)
        } else {
            None
        };
        body.extend_from_slice(b"}}");

        let query = is_query(fetch.operation_kind.as_ref());
        let Some(parsed) = self.send(&fetch.service_name, body, query).await else { return };
        let rewrites = fetch.output_rewrites.as_deref();
        match entities {
            None => {
                if let Some(mut returned) = parsed.data {
                    data::apply_output_rewrites(&mut returned, rewrites, self.possible);
                    let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
                    data::deep_merge(&mut data, returned);
                }
                self.push_errors(&parsed.errors, &fetch.service_name, |p| Some(p.to_vec()));
            }
            Some(paths) => {
                let items = take_list(parsed.data, "_entities");
                {
                    let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
                    self.merge_entities(&mut data, items, &[path], &paths, rewrites);
                }
                self.push_errors(&parsed.errors, &fetch.service_name, |p| {
                    entity_error_path(p, "_entities", &paths)
                });
            }
        }
    }

    /// Moves returned entities into their places (a copy only for an entity that goes to
    /// several places). `paths` are in the order the walks along `walk_paths` found the
    /// entities: one ordered walk of the tree merges them all, and only an entity the walk
    /// did not meet where expected (the tree changed under it) is looked up from the root.
    fn merge_entities(
        &self,
        data: &mut Value<'a>,
        mut items: Vec<Value<'a>>,
        walk_paths: &[&'a [FlattenNodePathSegment]],
        paths: &[(Vec<PathElem<'a>>, usize)],
        rewrites: Option<&'a [crate::planning::FetchRewrite]>,
    ) {
        let mut uses = vec![0u32; items.len()];
        for (_, i) in paths {
            if let Some(u) = uses.get_mut(*i) {
                *u += 1;
            }
        }
        let possible = self.possible;
        let mut take = |i: usize| -> Option<Value<'a>> {
            let slot = items.get_mut(i)?;
            // A null entity adds nothing: what other subgraphs said about it stays.
            if slot.is_null() {
                return None;
            }
            uses[i] -= 1;
            let mut value = if uses[i] == 0 { std::mem::take(slot) } else { slot.clone() };
            data::apply_output_rewrites(&mut value, rewrites, possible);
            Some(value)
        };
        let mut next = 0;
        for walk_path in walk_paths {
            data::visit_entities_mut(data, walk_path, possible, &mut |at, entity| {
                if let Some((expected, i)) = paths.get(next)
                    && data::same_path(at, expected)
                {
                    next += 1;
                    if let Some(value) = take(*i) {
                        data::deep_merge(entity, value);
                    }
                }
            });
        }
        for (entity_path, i) in &paths[next..] {
            if let Some(value) = take(*i) {
                data::merge_at(data, entity_path, value);
            }
        }
    }

    async fn batch_fetch(&self, batch: &'a BatchFetchNode) {
        let mut body =
            self.request_body(&batch.operation.document_str, batch.variable_usages.as_ref());
        let mut all_paths = Vec::new();
        {
            let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
            for alias in &batch.entity_batch.aliases {
                let mut paths = Vec::new();
                let mut reps = Representations::default();
                for merge_path in &alias.merge_paths {
                    for (entity_path, entity) in
                        collect_entities(&data, merge_path.as_slice(), self.possible)
                    {
                        if let Some(rep) = representation(
                            entity,
                            &alias.requires.items,
                            alias.input_rewrites.as_deref(),
                            self.possible,
                        ) {
                            paths.push((entity_path, reps.index_of(&rep)));
                        }
                    }
                }
                let reps = reps.into_json();
                push_variable(&mut body, &alias.representations_variable_name, |b| {
                    b.extend_from_slice(&reps)
                });
                all_paths.push(paths);
            }
        }
        if all_paths.iter().all(Vec::is_empty) {
            return;
        }
        body.extend_from_slice(b"}}");
        let query = is_query(batch.operation_kind.as_ref());
        let Some(parsed) = self.send(&batch.service_name, body, query).await else { return };
        let mut returned = match parsed.data {
            Some(Value::Object(fields)) => fields,
            _ => Vec::new(),
        };
        {
            let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
            for (alias, paths) in batch.entity_batch.aliases.iter().zip(&all_paths) {
                let position = returned.iter().position(|(k, _)| *k == alias.alias.as_str());
                let items = match position.map(|p| returned.swap_remove(p).1) {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                };
                let rewrites = alias.output_rewrites.as_deref();
                let walks: Vec<&[FlattenNodePathSegment]> =
                    alias.merge_paths.iter().map(|p| p.as_slice()).collect();
                self.merge_entities(&mut data, items, &walks, paths, rewrites);
            }
        }
        let aliases = &batch.entity_batch.aliases;
        self.push_errors(&parsed.errors, &batch.service_name, |p| {
            let first = p.first().and_then(|s| s.as_str())?;
            let position = aliases.iter().position(|a| a.alias == first)?;
            entity_error_path(p, first, &all_paths[position])
        });
    }

    fn push_errors(
        &self,
        errors: &[Value<'_>],
        service: &str,
        map_path: impl Fn(&[JsonValue]) -> Option<Vec<JsonValue>>,
    ) {
        if errors.is_empty() {
            return;
        }
        let mut out = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        for error in errors {
            out.extend(data::subgraph_error(error, service, &map_path));
        }
    }
}

fn is_query(kind: Option<&OperationKind>) -> bool {
    matches!(kind, None | Some(OperationKind::Query))
}

fn kind(node: &PlanNode) -> &'static str {
    match node {
        PlanNode::Fetch(_) => "Fetch",
        PlanNode::BatchFetch(_) => "BatchFetch",
        PlanNode::Sequence(_) => "Sequence",
        PlanNode::Parallel(_) => "Parallel",
        PlanNode::Flatten(_) => "Flatten",
        PlanNode::Condition(_) => "Condition",
        PlanNode::Subscription(_) => "Subscription",
        PlanNode::Defer(_) => "Defer",
    }
}

/// A subscription's plan, taken apart: the primary fetch (sent to its subgraph once, over
/// WebSocket) and the nodes to run for each event it yields.
pub fn split_subscription(node: &PlanNode) -> Option<(&FetchNode, Vec<&PlanNode>)> {
    match node {
        PlanNode::Subscription(sub) => Some((&sub.primary, Vec::new())),
        PlanNode::Sequence(seq) => match seq.nodes.split_first() {
            Some((PlanNode::Subscription(sub), rest)) => {
                Some((&sub.primary, rest.iter().collect()))
            }
            _ => None,
        },
        _ => None,
    }
}

/// The body of a subscription's primary fetch: its operation and the client variables it uses.
pub fn subscription_request(fetch: &FetchNode, variables: &JsonMap) -> Vec<u8> {
    let mut body = request_head(&fetch.operation.document_str);
    for name in fetch.variable_usages.iter().flatten() {
        if let Some(value) = variables.get(name.as_str()) {
            push_variable(&mut body, name, |b| {
                let _ = serde_json::to_writer(b, value);
            });
        }
    }
    body.extend_from_slice(b"}}");
    body
}
