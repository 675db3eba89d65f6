//! Executing a query plan: fetches to subgraphs (in sequence or in parallel as the plan says),
//! entity representations built from what earlier fetches returned, and every result merged
//! into one response tree. The client's exact selection is then projected from that tree by
//! [`projection`], with GraphQL's null propagation.

pub mod data;
mod entities;
pub mod introspection;
pub mod projection;

use std::sync::Mutex;

use apollo_compiler::response::{GraphQLError, JsonMap, JsonValue};
use futures::future::BoxFuture;
use serde_json_bytes::{ByteString, json};

use crate::planning::{BatchFetchNode, FetchNode, FlattenNodePathSegment, OperationKind, PlanNode};
use crate::transport::{SubgraphRequest, Transport};
use data::{PathElem, collect_entities, representation};
use entities::{Entities, Representations, TakeField, borrow_list, entity_error_path, take_list};

/// One execution of one plan.
pub struct Execution<'a> {
    transport: &'a Transport,
    variables: &'a JsonMap,
    headers: &'a crate::transport::ForwardedHeaders,
    possible: &'a crate::planning::PossibleTypes,
    data: Mutex<JsonValue>,
    errors: Mutex<Vec<GraphQLError>>,
}

impl<'a> Execution<'a> {
    /// An execution with coerced `variables`, forwarding `headers` to subgraphs.
    pub fn new(
        transport: &'a Transport,
        variables: &'a JsonMap,
        headers: &'a crate::transport::ForwardedHeaders,
        possible: &'a crate::planning::PossibleTypes,
    ) -> Self {
        Self {
            transport,
            variables,
            headers,
            possible,
            data: Mutex::new(JsonValue::Object(JsonMap::new())),
            errors: Mutex::new(Vec::new()),
        }
    }

    /// Runs the plan; returns the merged data and the subgraph errors (at client paths).
    pub async fn run(self, node: Option<&PlanNode>) -> (JsonValue, Vec<GraphQLError>) {
        if let Some(node) = node {
            self.node(node).await;
        }
        let data = self.data.into_inner().unwrap_or_else(|p| p.into_inner());
        let errors = self.errors.into_inner().unwrap_or_else(|p| p.into_inner());
        (data, errors)
    }

    fn node<'n>(&'n self, node: &'n PlanNode) -> BoxFuture<'n, ()> {
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

    fn used_variables(&self, usages: Option<&std::collections::BTreeSet<String>>) -> JsonMap {
        let mut out = JsonMap::new();
        for name in usages.into_iter().flatten() {
            if let Some(value) = self.variables.get(name.as_str()) {
                out.insert(ByteString::from(name.as_str()), value.clone());
            }
        }
        out
    }

    /// A root fetch (empty `path`) or an entity fetch under a Flatten path.
    async fn fetch(&self, fetch: &FetchNode, path: &[FlattenNodePathSegment]) {
        let mut variables = self.used_variables(fetch.variable_usages.as_ref());
        let entities = if fetch.requires.is_some() {
            let (paths, reps) = {
                let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
                let requires = fetch.requires.as_ref().map(|r| &r.items[..]).unwrap_or_default();
                let found = collect_entities(&data, path, self.possible);
                let mut paths = Vec::with_capacity(found.len());
                let mut reps = Representations::default();
                for (entity_path, entity) in found {
                    if let Some(rep) = representation(
                        entity,
                        requires,
                        fetch.input_rewrites.as_deref(),
                        self.possible,
                    ) {
                        paths.push((entity_path, reps.index_of(rep)));
                    }
                }
                (paths, reps.into_values())
            };
            if reps.is_empty() {
                return;
            }
            variables.insert("representations", JsonValue::Array(reps));
            Some(paths)
        } else {
            None
        };

        let request = SubgraphRequest {
            service: &fetch.service_name,
            query: &fetch.operation.document_str,
            variables,
            headers: self.headers,
            dedupe: is_query(fetch.operation_kind.as_ref()),
        };
        // Kept shared: identical fetches in flight read the same response without copying it.
        let response = match self.transport.execute(request).await {
            Ok(response) => response,
            Err(err) => {
                self.error(
                    format!("subgraph `{}` failed: {err}", fetch.service_name),
                    Some(&fetch.service_name),
                );
                return;
            }
        };
        let rewrites = fetch.output_rewrites.as_deref();
        let errors = response.errors.clone();
        match entities {
            None => {
                let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
                // The only reader of this response moves it in; a shared one is copied.
                match std::sync::Arc::try_unwrap(response) {
                    Ok(owned) => {
                        if let Some(mut returned) = owned.data {
                            data::apply_output_rewrites(&mut returned, rewrites, self.possible);
                            data::deep_merge(&mut data, returned);
                        }
                    }
                    Err(shared) => {
                        if let Some(returned) = &shared.data {
                            data::merge_fetched_at(
                                &mut data,
                                &[],
                                returned,
                                rewrites,
                                self.possible,
                            );
                        }
                    }
                }
                drop(data);
                self.push_errors(&errors, &fetch.service_name, |p| Some(p.to_vec()));
            }
            Some(paths) => {
                {
                    let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
                    match std::sync::Arc::try_unwrap(response) {
                        Ok(owned) => {
                            let items = take_list(owned.data, "_entities");
                            self.merge_entities(
                                &mut data,
                                Entities::Owned(items),
                                &paths,
                                rewrites,
                            );
                        }
                        Err(shared) => {
                            let items = borrow_list(shared.data.as_ref(), "_entities");
                            self.merge_entities(
                                &mut data,
                                Entities::Shared(items),
                                &paths,
                                rewrites,
                            );
                        }
                    }
                }
                self.push_errors(&errors, &fetch.service_name, |p| {
                    entity_error_path(p, "_entities", &paths)
                });
            }
        }
    }

    /// Merges returned entities into their places: owned ones are moved in (a copy only for
    /// an entity that goes to several places), shared ones are copied.
    fn merge_entities(
        &self,
        data: &mut JsonValue,
        entities: Entities<'_>,
        paths: &[(Vec<PathElem<'_>>, usize)],
        rewrites: Option<&[crate::planning::FetchRewrite]>,
    ) {
        match entities {
            Entities::Owned(mut items) => {
                let mut uses = vec![0u32; items.len()];
                for (_, i) in paths {
                    if let Some(u) = uses.get_mut(*i) {
                        *u += 1;
                    }
                }
                for (entity_path, i) in paths {
                    let Some(slot) = items.get_mut(*i) else { continue };
                    // A null entity adds nothing: what other subgraphs said about it stays.
                    if slot.is_null() {
                        continue;
                    }
                    uses[*i] -= 1;
                    let mut value = if uses[*i] == 0 {
                        std::mem::replace(slot, JsonValue::Null)
                    } else {
                        slot.clone()
                    };
                    data::apply_output_rewrites(&mut value, rewrites, self.possible);
                    data::merge_at(data, entity_path, value);
                }
            }
            Entities::Shared(items) => {
                for (entity_path, i) in paths {
                    if let Some(value) = items.get(*i).filter(|v| !v.is_null()) {
                        data::merge_fetched_at(data, entity_path, value, rewrites, self.possible);
                    }
                }
            }
        }
    }

    async fn batch_fetch(&self, batch: &BatchFetchNode) {
        let mut variables = self.used_variables(batch.variable_usages.as_ref());
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
                            paths.push((entity_path, reps.index_of(rep)));
                        }
                    }
                }
                variables.insert(
                    ByteString::from(alias.representations_variable_name.as_str()),
                    JsonValue::Array(reps.into_values()),
                );
                all_paths.push(paths);
            }
        }
        if all_paths.iter().all(Vec::is_empty) {
            return;
        }
        let request = SubgraphRequest {
            service: &batch.service_name,
            query: &batch.operation.document_str,
            variables,
            headers: self.headers,
            dedupe: is_query(batch.operation_kind.as_ref()),
        };
        let response = match self.transport.execute(request).await {
            Ok(r) => r,
            Err(err) => {
                self.error(
                    format!("subgraph `{}` failed: {err}", batch.service_name),
                    Some(&batch.service_name),
                );
                return;
            }
        };
        let errors = response.errors.clone();
        {
            let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
            let aliases = batch.entity_batch.aliases.iter().zip(&all_paths);
            match std::sync::Arc::try_unwrap(response) {
                Ok(owned) => {
                    let mut returned = owned.data;
                    for (alias, paths) in aliases {
                        let items = take_list(returned.take_field(&alias.alias), "");
                        let rewrites = alias.output_rewrites.as_deref();
                        self.merge_entities(&mut data, Entities::Owned(items), paths, rewrites);
                    }
                }
                Err(shared) => {
                    for (alias, paths) in aliases {
                        let items = borrow_list(shared.data.as_ref(), &alias.alias);
                        let rewrites = alias.output_rewrites.as_deref();
                        self.merge_entities(&mut data, Entities::Shared(items), paths, rewrites);
                    }
                }
            }
        }
        let aliases = &batch.entity_batch.aliases;
        self.push_errors(&errors, &batch.service_name, |p| {
            let first = p.first().and_then(|s| s.as_str())?;
            let position = aliases.iter().position(|a| a.alias == first)?;
            entity_error_path(p, first, &all_paths[position])
        });
    }

    fn push_errors(
        &self,
        errors: &[JsonValue],
        service: &str,
        map_path: impl Fn(&[JsonValue]) -> Option<Vec<JsonValue>>,
    ) {
        if errors.is_empty() {
            return;
        }
        let mut out = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        for error in errors {
            out.extend(data::subgraph_error(error.clone(), service, &map_path));
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
