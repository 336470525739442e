//! CRD validation rules (`x-kubernetes-validations`), as
//! k8s.io/apiextensions-apiserver treats them: compiled when a CRD is
//! written, with the CEL environment of the Kubernetes version kubesim
//! emulates, and evaluated on every create and update of a custom resource,
//! transition rules (`oldSelf`) on updates only.
//!
//! Compiling: a rule must parse, and every Kubernetes CEL library it calls must
//! be in the environment. A CRD written to a server of version V is compiled
//! with the environment of V-1 (upstream's `DefaultCompatibilityVersion`: a
//! new expression must also work on the version one may roll back to), so a
//! library upstream introduced in 1.28 (quantity) is usable in CRDs from 1.29;
//! a rule calling it on 1.28 gets upstream's `undeclared reference`. Type
//! checking and cost estimation are not modelled.
//!
//! Evaluating: with the `cel` crate, plus Kubernetes' quantity library. A rule
//! that calls a library kubesim does not implement (URLs, regex `find`, lists,
//! IP/CIDR, format, semver, sets) compiles but is not evaluated (said in the
//! log). From 1.30 (validation ratcheting), a value an update leaves unchanged
//! is not checked again.

use crate::config::KubeVersion;
use crate::error::FieldError;
use cel::extractors::This;
use cel::objects::{Key, Map as CelMap, Opaque};
use cel::{Context, ExecutionError, Program, Value as Cel};
use parking_lot::Mutex;
use quantity::Quantity;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// A Kubernetes CEL library: its functions and namespace identifiers, and the
/// version upstream added it to the base environment (`environment/base.go`).
struct Library {
    functions: &'static [&'static str],
    namespaces: &'static [&'static str],
    since: KubeVersion,
    evaluated: bool,
}

const QUANTITY: &[&str] = &[
    "quantity",
    "isQuantity",
    "sign",
    "isGreaterThan",
    "isLessThan",
    "compareTo",
    "add",
    "sub",
    "asInteger",
    "isInteger",
    "asApproximateFloat",
];

const LIBRARIES: &[Library] = &[
    // CEL's standard functions and macros (has, all, exists, map, filter are
    // expanded by the parser).
    Library {
        functions: &[
            "size",
            "contains",
            "startsWith",
            "endsWith",
            "matches",
            "int",
            "uint",
            "double",
            "string",
            "bytes",
            "bool",
            "duration",
            "timestamp",
            "type",
            "dyn",
            "getDate",
            "getDayOfMonth",
            "getDayOfWeek",
            "getDayOfYear",
            "getFullYear",
            "getHours",
            "getMilliseconds",
            "getMinutes",
            "getMonth",
            "getSeconds",
        ],
        namespaces: &[],
        since: KubeVersion::new(1, 0),
        evaluated: true,
    },
    // URLs, regex, lists (v0) and the strings extension (v0).
    Library {
        functions: &[
            "url",
            "isURL",
            "getScheme",
            "getHost",
            "getHostname",
            "getPort",
            "getEscapedPath",
            "getQuery",
            "find",
            "findAll",
            "isSorted",
            "sum",
            "min",
            "max",
            "indexOf",
            "lastIndexOf",
            "charAt",
            "lowerAscii",
            "replace",
            "split",
            "substring",
            "trim",
            "upperAscii",
            "join",
        ],
        namespaces: &[],
        since: KubeVersion::new(1, 0),
        evaluated: false,
    },
    Library { functions: QUANTITY, namespaces: &[], since: KubeVersion::new(1, 28), evaluated: true },
    Library {
        functions: &["of", "ofNonZeroValue", "none", "hasValue", "value", "orValue", "or", "optMap", "optFlatMap"],
        namespaces: &["optional"],
        since: KubeVersion::new(1, 28),
        evaluated: false,
    },
    Library {
        functions: &["equivalent", "intersects", "format", "quote", "reverse"],
        namespaces: &["sets"],
        since: KubeVersion::new(1, 29),
        evaluated: false,
    },
    Library {
        functions: &[
            "ip",
            "isIP",
            "cidr",
            "isCIDR",
            "family",
            "isUnspecified",
            "isLoopback",
            "isLinkLocalMulticast",
            "isLinkLocalUnicast",
            "isGlobalUnicast",
            "containsIP",
            "containsCIDR",
            "masked",
            "prefixLength",
        ],
        namespaces: &[],
        since: KubeVersion::new(1, 30),
        evaluated: false,
    },
    Library { functions: &["validate"], namespaces: &["format"], since: KubeVersion::new(1, 31), evaluated: false },
    Library {
        functions: &["semver", "isSemver", "major", "minor", "patch"],
        namespaces: &[],
        since: KubeVersion::new(1, 33),
        evaluated: false,
    },
];

/// The environment new expressions compile with on a server of `version`.
fn compatibility(version: KubeVersion) -> KubeVersion {
    KubeVersion::new(version.major, version.minor.saturating_sub(1))
}

fn library_of(function: &str) -> Option<&'static Library> {
    LIBRARIES.iter().find(|l| l.functions.contains(&function))
}

fn is_operator(function: &str) -> bool {
    function.starts_with('_') || function.starts_with('@') || function.starts_with("!_") || function.starts_with("-_")
}

/// Programs compiled so far, by their text: a CRD's rules are compiled once,
/// not on every write of its objects (at most [`PROGRAMS_KEPT`]; past that the
/// cache starts over).
static PROGRAMS: std::sync::LazyLock<Mutex<HashMap<String, Arc<Program>>>> = std::sync::LazyLock::new(Default::default);
const PROGRAMS_KEPT: usize = 1024;

/// `text` parsed, or the parser's error.
fn program(text: &str) -> Result<Arc<Program>, String> {
    if let Some(p) = PROGRAMS.lock().get(text) {
        return Ok(p.clone());
    }
    let p = Arc::new(Program::compile(text).map_err(|e| e.to_string())?);
    let mut kept = PROGRAMS.lock();
    if kept.len() >= PROGRAMS_KEPT {
        kept.clear();
    }
    kept.insert(text.to_string(), p.clone());
    Ok(p)
}

/// `rule` compiled for a server of `version`, or why it does not compile
/// there, in upstream's words.
fn compile(rule: &str, version: KubeVersion) -> Result<Arc<Program>, String> {
    let program = program(rule).map_err(|e| format!("compilation failed: ERROR: <input>: {e}"))?;
    let env = compatibility(version);
    let refs = program.references();
    let mut missing: Vec<&str> = refs
        .functions()
        .into_iter()
        .filter(|f| !is_operator(f) && library_of(f).is_none_or(|l| l.since > env))
        .collect();
    missing.extend(
        refs.variables().into_iter().filter(|v| LIBRARIES.iter().any(|l| l.namespaces.contains(v) && l.since > env)),
    );
    missing.sort_by_key(|name| rule.find(name).unwrap_or(usize::MAX));
    let Some(name) = missing.first() else { return Ok(program.clone()) };
    let column = rule.find(name).map(|i| i + 1).unwrap_or(1);
    Err(format!(
        "compilation failed: ERROR: <input>:1:{column}: undeclared reference to '{name}' (in container '')\n | {rule}\n | {}^",
        " ".repeat(column.saturating_sub(1))
    ))
}

/// Every rule in a CRD that a server of `version` cannot compile, and every
/// transition rule where old and new values cannot be correlated, at the
/// field paths upstream names.
pub fn check_crd(crd: &Value, version: KubeVersion) -> Vec<FieldError> {
    let mut out = Vec::new();
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array).into_iter().flatten();
    for (i, v) in versions.enumerate() {
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
            check_node(schema, &path, None, version, &mut out);
        }
    }
    out
}

fn check_node(
    schema: &Value,
    path: &str,
    uncorrelatable: Option<&str>,
    version: KubeVersion,
    out: &mut Vec<FieldError>,
) {
    for (i, rule) in schema.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten().enumerate()
    {
        let at = format!("{path}.x-kubernetes-validations[{i}].rule");
        let Some(text) = rule.get("rule").and_then(Value::as_str) else {
            out.push(FieldError::required(at, ""));
            continue;
        };
        match compile(text, version) {
            Err(why) => out.push(FieldError::invalid_raw(at, format!("{{Rule:{text:?}}}"), why)),
            Ok(p) => {
                if let Some(within) = uncorrelatable
                    && p.references().has_variable("oldSelf")
                {
                    out.push(FieldError::invalid(
                        at,
                        text,
                        format!("oldSelf cannot be used on the uncorrelatable portion of the schema within {within}"),
                    ));
                }
            }
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            check_node(s, &format!("{path}.properties[{k}]"), uncorrelatable, version, out);
        }
    }
    if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object()) {
        check_node(s, &format!("{path}.additionalProperties"), uncorrelatable, version, out);
    }
    if let Some(items) = schema.get("items") {
        let keyed = schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map");
        let within = uncorrelatable.map(str::to_string).or_else(|| (!keyed).then(|| path.to_string()));
        check_node(items, &format!("{path}.items"), within.as_deref(), version, out);
    }
}

/// What the rules of `schema` say about `obj` (and `old`, on an update).
pub fn evaluate(schema: &Value, obj: &Value, old: Option<&Value>, version: KubeVersion) -> Vec<FieldError> {
    let mut out = Vec::new();
    let ratchet = version >= KubeVersion::new(1, 30);
    let mut walk = Walk { ratchet, out: &mut out };
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(v) = obj.get(k) {
                walk.node(s, v, old.and_then(|o| o.get(k)), k);
            }
        }
    }
    walk.rules(schema, obj, old, "");
    out
}

struct Walk<'a> {
    ratchet: bool,
    out: &'a mut Vec<FieldError>,
}

impl Walk<'_> {
    fn node(&mut self, schema: &Value, v: &Value, old: Option<&Value>, path: &str) {
        if self.ratchet && old == Some(v) {
            return;
        }
        match v {
            Value::Object(m) => {
                let props = schema.get("properties").and_then(Value::as_object);
                let extra = schema.get("additionalProperties").filter(|s| s.is_object());
                for (k, child) in m {
                    let Some(s) = props.and_then(|p| p.get(k)).or(extra) else { continue };
                    let at =
                        if props.is_some_and(|p| p.contains_key(k)) { join(path, k) } else { format!("{path}[{k}]") };
                    self.node(s, child, old.and_then(|o| o.get(k)), &at);
                }
            }
            Value::Array(items) => {
                if let Some(s) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        let old_item = correlate(schema, item, old);
                        self.node(s, item, old_item, &format!("{path}[{i}]"));
                    }
                }
            }
            _ => {}
        }
        self.rules(schema, v, old, path);
    }

    fn rules(&mut self, schema: &Value, v: &Value, old: Option<&Value>, path: &str) {
        for rule in schema.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten() {
            let Some(text) = rule.get("rule").and_then(Value::as_str) else { continue };
            let Ok(program) = program(text) else { continue };
            let refs = program.references();
            let transition = refs.has_variable("oldSelf");
            let optional_old = rule.get("optionalOldSelf").and_then(Value::as_bool) == Some(true);
            if transition && old.is_none() && !optional_old {
                continue;
            }
            let unevaluated = refs.functions().into_iter().find(|f| library_of(f).is_some_and(|l| !l.evaluated));
            if let Some(f) = unevaluated {
                tracing::debug!(rule = text, function = f, "kubesim does not evaluate this CEL library; rule skipped");
                continue;
            }
            let at = match rule.get("fieldPath").and_then(Value::as_str) {
                Some(fp) if !fp.is_empty() => format!("{path}{fp}"),
                _ => path.to_string(),
            };
            if let Some(e) = self.check(&program, rule, v, old, &at, schema) {
                self.out.push(e);
            }
        }
    }

    fn check(
        &self,
        program: &Program,
        rule: &Value,
        v: &Value,
        old: Option<&Value>,
        at: &str,
        schema: &Value,
    ) -> Option<FieldError> {
        let mut ctx = context();
        ctx.add_variable_from_value("self", to_cel(v));
        if let Some(o) = old {
            ctx.add_variable_from_value("oldSelf", to_cel(o));
        }
        let type_name = schema.get("type").and_then(Value::as_str).unwrap_or("object");
        match program.execute(&ctx) {
            Ok(Cel::Bool(true)) => None,
            Ok(Cel::Bool(false)) => Some(self.failure(rule, at, type_name, &ctx)),
            Ok(other) => {
                Some(FieldError::invalid(at, type_name, format!("rule did not evaluate to a bool: {other:?}")))
            }
            Err(ExecutionError::UndeclaredReference(name)) if library_of(&name).is_none() => {
                tracing::debug!(function = %name, "kubesim's CEL evaluator lacks a function; rule skipped");
                None
            }
            Err(e) => Some(FieldError::invalid(at, type_name, e.to_string())),
        }
    }

    fn failure(&self, rule: &Value, at: &str, type_name: &str, ctx: &Context) -> FieldError {
        let text = rule.get("rule").and_then(Value::as_str).unwrap_or("");
        let from_expression =
            rule.get("messageExpression").and_then(Value::as_str).and_then(|e| program(e).ok()).and_then(|p| {
                match p.execute(ctx) {
                    Ok(Cel::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
                    _ => None,
                }
            });
        let message = from_expression.unwrap_or_else(|| match rule.get("message").and_then(Value::as_str) {
            Some(m) if !m.trim().is_empty() => m.trim().to_string(),
            _ => format!("failed rule: {text}"),
        });
        match rule.get("reason").and_then(Value::as_str) {
            Some("FieldValueForbidden") => FieldError::forbidden(at, message),
            Some("FieldValueRequired") => FieldError::required(at, message),
            Some("FieldValueDuplicate") => FieldError::duplicate(at, type_name),
            _ => FieldError::invalid(at, type_name, message),
        }
    }
}

/// The old item a new list item is compared with: by key in a map list,
/// else none (upstream correlates only what it can identify).
fn correlate<'a>(schema: &Value, item: &Value, old: Option<&'a Value>) -> Option<&'a Value> {
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
        return None;
    }
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    old?.as_array()?.iter().find(|o| keys.iter().all(|k| o.get(k) == item.get(k)))
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() { k.to_string() } else { format!("{path}.{k}") }
}

fn to_cel(v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cel::Int(i),
            None => Cel::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(a) => Cel::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(m) => {
            let map: HashMap<Key, Cel> = m.iter().map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v))).collect();
            Cel::Map(CelMap { map: Arc::new(map) })
        }
    }
}

/// Kubernetes' quantity library: `quantity("1Gi")` and its methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CelQuantity(Quantity);

impl Opaque for CelQuantity {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.Quantity"
    }
}

fn quantity_of(v: &Arc<dyn Opaque>) -> Result<Quantity, ExecutionError> {
    v.downcast_ref::<CelQuantity>()
        .map(|q| q.0)
        .ok_or_else(|| ExecutionError::function_error("quantity", "not a quantity"))
}

fn wrap(q: Quantity) -> Cel {
    Cel::Opaque(Arc::new(CelQuantity(q)))
}

fn context() -> Context<'static, 'static> {
    let mut ctx = Context::default();
    let _ = ctx.add_function("quantity", |s: Arc<String>| {
        Quantity::parse(&s).map(wrap).ok_or_else(|| {
            ExecutionError::function_error("quantity", format!("quantities must match the regular expression: {s:?}"))
        })
    });
    let _ = ctx.add_function("isQuantity", |s: Arc<String>| Quantity::parse(&s).is_some());
    let _ = ctx.add_function("compareTo", |This(a): This<Arc<dyn Opaque>>, b: Arc<dyn Opaque>| {
        Ok::<i64, ExecutionError>(match quantity_of(&a)?.cmp(&quantity_of(&b)?) {
            std::cmp::Ordering::Less => -1,
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Greater => 1,
        })
    });
    let _ = ctx.add_function("isGreaterThan", |This(a): This<Arc<dyn Opaque>>, b: Arc<dyn Opaque>| {
        Ok::<bool, ExecutionError>(quantity_of(&a)? > quantity_of(&b)?)
    });
    let _ = ctx.add_function("isLessThan", |This(a): This<Arc<dyn Opaque>>, b: Arc<dyn Opaque>| {
        Ok::<bool, ExecutionError>(quantity_of(&a)? < quantity_of(&b)?)
    });
    let _ = ctx.add_function("sign", |This(a): This<Arc<dyn Opaque>>| {
        Ok::<i64, ExecutionError>(quantity_of(&a)?.0.signum() as i64)
    });
    let _ = ctx.add_function("isInteger", |This(a): This<Arc<dyn Opaque>>| {
        Ok::<bool, ExecutionError>(quantity_of(&a)?.millis() % 1000 == 0)
    });
    let _ = ctx.add_function("asInteger", |This(a): This<Arc<dyn Opaque>>| {
        let m = quantity_of(&a)?.millis();
        if m % 1000 != 0 {
            return Err(ExecutionError::function_error("asInteger", "cannot convert value to integer"));
        }
        i64::try_from(m / 1000).map_err(|_| ExecutionError::function_error("asInteger", "integer overflow"))
    });
    let _ = ctx.add_function("asApproximateFloat", |This(a): This<Arc<dyn Opaque>>| {
        Ok::<f64, ExecutionError>(quantity_of(&a)?.millis() as f64 / 1000.0)
    });
    let _ = ctx.add_function("add", |This(a): This<Arc<dyn Opaque>>, b: Cel| arith(&a, &b, 1));
    let _ = ctx.add_function("sub", |This(a): This<Arc<dyn Opaque>>, b: Cel| arith(&a, &b, -1));
    ctx
}

fn arith(a: &Arc<dyn Opaque>, b: &Cel, sign: i128) -> Result<Cel, ExecutionError> {
    let a = quantity_of(a)?;
    let b = match b {
        Cel::Opaque(o) => quantity_of(o)?,
        Cel::Int(i) => Quantity(i128::from(*i).saturating_mul(1000)),
        _ => return Err(ExecutionError::function_error("add", "a quantity or an integer")),
    };
    Ok(wrap(Quantity(a.0.saturating_add(sign.saturating_mul(b.0)))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHRINK: &str = "quantity(self).compareTo(quantity(oldSelf)) >= 0";

    fn compile_error(rule: &str, version: KubeVersion) -> Option<String> {
        compile(rule, version).err()
    }

    #[test]
    fn the_quantity_library_compiles_from_1_29() {
        let e = compile_error(SHRINK, KubeVersion::new(1, 28)).unwrap();
        assert!(
            e.starts_with(
                "compilation failed: ERROR: <input>:1:1: undeclared reference to 'quantity' (in container '')"
            ),
            "{e}"
        );
        assert_eq!(compile_error(SHRINK, KubeVersion::new(1, 29)), None);
        assert!(compile_error("self.size() > 0 && self.startsWith('a')", KubeVersion::new(1, 28)).is_none());
        assert!(compile_error("isIP(self)", KubeVersion::new(1, 30)).is_some());
        assert!(compile_error("isIP(self)", KubeVersion::new(1, 31)).is_none());
        assert!(compile_error("self.frobnicate()", KubeVersion::new(1, 33)).is_some());
        assert!(compile_error("self >", KubeVersion::new(1, 33)).is_some());
    }

    #[test]
    fn transition_rules_see_the_old_value() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "size": {"type": "string", "x-kubernetes-validations": [{"rule": SHRINK, "message": "may grow but not shrink"}]},
            "replicas": {"type": "integer", "x-kubernetes-validations": [{"rule": "self <= 10"}]}}}}});
        let v = KubeVersion::new(1, 33);
        let new = json!({"spec": {"size": "5Gi", "replicas": 3}});
        assert!(evaluate(&schema, &new, None, v).is_empty(), "a create has no oldSelf");
        let old = json!({"spec": {"size": "10Gi", "replicas": 3}});
        let errs = evaluate(&schema, &new, Some(&old), v);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].to_string(), "spec.size: Invalid value: \"string\": may grow but not shrink");
        let grown = json!({"spec": {"size": "20Gi", "replicas": 3}});
        assert!(evaluate(&schema, &grown, Some(&old), v).is_empty());
        let many = json!({"spec": {"size": "10Gi", "replicas": 11}});
        let errs = evaluate(&schema, &many, None, v);
        assert_eq!(errs[0].to_string(), "spec.replicas: Invalid value: \"integer\": failed rule: self <= 10");
        // Ratcheting: an update that leaves a failing value alone passes from 1.30.
        assert!(evaluate(&schema, &many, Some(&many), v).is_empty());
        assert_eq!(evaluate(&schema, &many, Some(&many), KubeVersion::new(1, 29)).len(), 1);
    }

    #[test]
    fn old_self_under_a_plain_list_is_refused() {
        let crd = json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "items": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}}}}]}});
        let errs = check_crd(&crd, KubeVersion::new(1, 33));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().contains("uncorrelatable portion of the schema"), "{}", errs[0]);
    }
}
