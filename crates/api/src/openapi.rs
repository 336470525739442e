//! The OpenAPI 3.1 document. Routes and their types come from the handlers'
//! `utoipa::path` attributes; the CRD types (specs and statuses) keep their one
//! schema definition, the schemars one the CRDs are generated from, merged in
//! under `components.schemas` (OpenAPI 3.1 schemas are JSON Schema 2020-12,
//! which is what schemars writes).

use crate::model::{DeletedEvent, SnapshotEvent};
use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Paddock API", description = "Isolated, on-demand tenant workloads on Kubernetes."),
    modifiers(&Bearer),
    security(("bearer" = [])),
    components(schemas(SnapshotEvent, DeletedEvent)),
    tags((name = "tenants"), (name = "templates"), (name = "instances"), (name = "tokens"), (name = "nodes"), (name = "vpn"),
        (name = "events"), (name = "health"), (name = "clusters"))
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let comps = doc.components.get_or_insert_with(Default::default);
        comps.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The final document: utoipa's plus the schemars definitions it references.
pub fn finish(doc: utoipa::openapi::OpenApi) -> Value {
    let mut v = serde_json::to_value(&doc).unwrap_or(Value::Null);
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = settings.into_generator();
    generator.subschema_for::<resources::TenantSpec>();
    generator.subschema_for::<resources::TenantStatus>();
    generator.subschema_for::<resources::TemplateSpec>();
    generator.subschema_for::<resources::TemplateStatus>();
    generator.subschema_for::<resources::InstanceStatus>();
    let schemas = &mut v["components"]["schemas"];
    if !schemas.is_object() {
        *schemas = json!({});
    }
    for (name, schema) in generator.take_definitions(true) {
        schemas[name] = schema;
    }
    problem_content_type(&mut v);
    operation_ids(&mut v);
    // These bodies may be left out (their fields all have defaults).
    for (path, method) in
        [("/v1/tenants/{tenant}/tokens", "post"), ("/v1/tenants/{tenant}/instances/{instance}/renew", "post")]
    {
        if let Some(rb) = v.pointer_mut(&format!("/paths/{}/{method}/requestBody", path.replace('/', "~1"))) {
            rb["required"] = json!(false);
        }
    }
    v["openapi"] = json!("3.1.0");
    v
}

/// Every operation's id is `<tag>_<handler>` (`clusters_get`,
/// `instances_get`): utoipa takes the handler's name alone, and handlers of
/// different modules share names, while OpenAPI wants each id unique (client
/// generators and links resolve operations by it).
fn operation_ids(v: &mut Value) {
    let Some(paths) = v.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for op in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|m| m.values_mut()) {
        let tag = op.pointer("/tags/0").and_then(Value::as_str).map(str::to_string);
        if let (Some(tag), Some(id)) = (tag, op.get("operationId").and_then(Value::as_str)) {
            op["operationId"] = Value::from(format!("{tag}_{id}"));
        }
    }
}

/// Problem bodies are `application/problem+json`, not `application/json`.
fn problem_content_type(v: &mut Value) {
    let Some(paths) = v.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for op in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|m| m.values_mut()) {
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else { continue };
        for r in responses.values_mut() {
            let Some(content) = r.get_mut("content").and_then(Value::as_object_mut) else { continue };
            let is_problem = content
                .get("application/json")
                .and_then(|c| c.pointer("/schema/$ref"))
                .and_then(Value::as_str)
                .is_some_and(|r| r.ends_with("/Problem"));
            if is_problem && let Some(c) = content.remove("application/json") {
                content.insert("application/problem+json".into(), c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_unique() {
        let v = finish(crate::router_doc());
        let mut seen = std::collections::BTreeMap::new();
        for (path, methods) in v["paths"].as_object().unwrap() {
            for (method, op) in methods.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
                if let Some(other) = seen.insert(id.to_string(), format!("{method} {path}")) {
                    panic!("operationId {id} names both {other} and {method} {path}");
                }
            }
        }
        assert_eq!(seen.get("clusters_get").map(String::as_str), Some("get /v1/tenants/{tenant}/clusters/{cluster}"));
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = finish(crate::router_doc());
        let text = doc.to_string();
        let mut missing = Vec::new();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            if doc["components"]["schemas"].get(name).is_none() {
                missing.push(name.to_string());
            }
        }
        assert!(missing.is_empty(), "unresolved: {missing:?}");
        assert!(doc["components"]["schemas"]["TenantSpec"]["properties"]["quota"].is_object());
    }
}
