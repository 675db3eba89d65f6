//! Composition: subgraph SDLs into one Federation v2 supergraph SDL with the standard
//! `@join__*` directives, so that any federation gateway (ours, Apollo Router, Hive Router)
//! can serve it.
//!
//! `graphql-composition` does the composing. Its output leaves `@join__type` off the root
//! operation types, which planners use to know which subgraphs serve root fields, so we add
//! one `@join__type(graph: …)` per subgraph that contributes fields to each root type.

use std::collections::BTreeSet;

use graphql_tools::parser::schema::{Definition, Document, TypeDefinition, parse_schema};

/// One subgraph to compose.
#[derive(Debug, Clone)]
pub struct SubgraphSdl {
    /// Its name (becomes the join graph name).
    pub name: String,
    /// Where the gateway reaches it.
    pub url: String,
    /// Its SDL, as served by `_service { sdl }`.
    pub sdl: String,
}

/// Why composition failed; each message names the subgraph or the type/field at fault.
#[derive(Debug, thiserror::Error)]
#[error("composition failed:\n  {}", .0.join("\n  "))]
pub struct CompositionError(pub Vec<String>);

/// Composes subgraphs into a supergraph SDL.
pub fn compose(subgraphs: &[SubgraphSdl]) -> Result<String, CompositionError> {
    let mut ingested = graphql_composition::Subgraphs::default();
    let mut errors = Vec::new();
    for subgraph in subgraphs {
        if let Err(err) = ingested.ingest_str(&subgraph.sdl, &subgraph.name, Some(&subgraph.url)) {
            errors.push(format!("subgraph `{}`: {err}", subgraph.name));
        }
    }
    if !errors.is_empty() {
        return Err(CompositionError(errors));
    }
    let graph =
        graphql_composition::compose(&mut ingested).into_result().map_err(|diagnostics| {
            CompositionError(diagnostics.iter_errors().map(str::to_string).collect())
        })?;
    let sdl = graphql_composition::render_federated_sdl(&graph)
        .map_err(|e| CompositionError(vec![format!("rendering the supergraph: {e}")]))?;
    add_root_join_types(&sdl)
}

/// Adds `@join__type(graph: G)` to each root type for every graph with a field on it.
fn add_root_join_types(sdl: &str) -> Result<String, CompositionError> {
    let document: Document<'_, String> = parse_schema(sdl).map_err(|e| {
        CompositionError(vec![format!("the composed supergraph does not parse: {e}")])
    })?;
    let mut out = sdl.to_string();
    for root in ["Query", "Mutation", "Subscription"] {
        let Some(graphs) = root_graphs(&document, root) else { continue };
        if graphs.is_empty() {
            continue;
        }
        let header = format!("type {root}");
        let Some(start) = find_type_header(&out, &header) else { continue };
        let directives: String =
            graphs.iter().map(|g| format!("\n  @join__type(graph: {g})")).collect();
        out.insert_str(start + header.len(), &directives);
    }
    Ok(out)
}

/// The graphs named by `@join__field(graph:)` on a root type's fields, when the type has no
/// `@join__type` yet (`None` when the type is absent or already annotated).
fn root_graphs(document: &Document<'_, String>, root: &str) -> Option<BTreeSet<String>> {
    let object = document.definitions.iter().find_map(|d| match d {
        Definition::TypeDefinition(TypeDefinition::Object(o)) if o.name == root => Some(o),
        _ => None,
    })?;
    if object.directives.iter().any(|d| d.name == "join__type") {
        return None;
    }
    let mut graphs = BTreeSet::new();
    for field in &object.fields {
        for directive in field.directives.iter().filter(|d| d.name == "join__field") {
            for (name, value) in &directive.arguments {
                if name == "graph" {
                    graphs.insert(value.to_string());
                }
            }
        }
    }
    Some(graphs)
}

/// The byte offset of `type Query` (followed by whitespace or `{`) at the start of a line.
fn find_type_header(sdl: &str, header: &str) -> Option<usize> {
    let mut offset = 0;
    for line in sdl.split_inclusive('\n') {
        let rest = &line[header.len().min(line.len())..];
        if line.starts_with(header) && rest.starts_with([' ', '{', '\n', '@']) {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subgraph(name: &str, sdl: &str) -> SubgraphSdl {
        let link = r#"extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@shareable"])"#;
        SubgraphSdl {
            name: name.into(),
            url: format!("http://{name}.invalid/graphql"),
            sdl: format!("{link}\n{sdl}"),
        }
    }

    #[test]
    fn root_types_get_a_join_type_per_contributing_subgraph() {
        let sdl = compose(&[
            subgraph("a", "type Query { a: Thing } type Thing @key(fields: \"id\") { id: ID! }"),
            subgraph(
                "b",
                "type Query { b: Int } type Thing @key(fields: \"id\") { id: ID! extra: String }",
            ),
        ])
        .unwrap();
        let query = &sdl[sdl.find("type Query").unwrap()..];
        let header = &query[..query.find('{').unwrap()];
        assert!(
            header.contains("@join__type(graph: A)") && header.contains("@join__type(graph: B)"),
            "{header}"
        );
        crate::supergraph::Supergraph::load(&sdl).expect("our planner accepts the result");
    }

    #[test]
    fn conflicts_name_the_type_and_field_at_fault() {
        let err = compose(&[
            subgraph("a", "type Query { a: Int } type Price { amount: Int }"),
            subgraph("b", "type Query { b: Int } type Price { amount: String }"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("Price.amount") || (text.contains("Price") && text.contains("amount")),
            "{text}"
        );
    }
}
