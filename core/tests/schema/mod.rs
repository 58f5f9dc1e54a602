//! A JSON Schema (draft 2020-12) validator for the keywords OpenAI's
//! Responses event schemas use (tests/fixtures/responses-events): `type`,
//! `enum`, `const`, `properties`, `required`, `additionalProperties`,
//! `items`, `anyOf`, `oneOf`, `allOf`, `$ref` to `#/$defs/…`, and the
//! length, count and range bounds. Not checked: `pattern` and `format`
//! (on members Hub never writes), and `$recursiveRef` (only inside
//! file-search filters), which accept anything.

use serde_json::Value;
use std::path::PathBuf;

/// The schema of one event type, from the fixtures.
pub fn event_schema(kind: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/responses-events")
        .join(format!("{kind}.schema.json"));
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("no schema for `{kind}` ({}): {e}", path.display()));
    serde_json::from_slice(&text).unwrap()
}

/// The problems of `v` against `schema` (empty when valid), each with its path.
pub fn validate(schema: &Value, v: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, schema, v, "$", &mut errors);
    errors
}

fn check(root: &Value, s: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(s) = s.as_object() else { return };
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        check(root, resolve(root, r), v, at, errors);
    }
    if let Some(t) = s.get("type") {
        if !type_matches(t, v) {
            errors.push(format!("{at}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errors.push(format!("{at}: {v} is not one of {}", Value::Array(e.clone())));
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            errors.push(format!("{at}: {v} is not {c}"));
        }
    }
    bounds(s, v, at, errors);
    combinators(root, s, v, at, errors);
    match v {
        Value::Object(o) => object(root, s, o, at, errors),
        Value::Array(a) => {
            if let Some(items) = s.get("items") {
                for (i, x) in a.iter().enumerate() {
                    check(root, items, x, &format!("{at}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

fn resolve<'a>(root: &'a Value, r: &str) -> &'a Value {
    let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {r}"));
    root.pointer(pointer).unwrap_or_else(|| panic!("unresolved $ref {r}"))
}

fn type_matches(t: &Value, v: &Value) -> bool {
    match t {
        Value::Array(ts) => ts.iter().any(|t| type_matches(t, v)),
        Value::String(t) => match t.as_str() {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "number" => v.is_number(),
            "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
            other => panic!("unknown type {other}"),
        },
        _ => true,
    }
}

fn bounds(s: &serde_json::Map<String, Value>, v: &Value, at: &str, errors: &mut Vec<String>) {
    let n = |k: &str| s.get(k).and_then(Value::as_f64);
    let size = match v {
        Value::String(t) => Some(("length", t.chars().count() as f64, n("minLength"), n("maxLength"))),
        Value::Array(a) => Some(("items", a.len() as f64, n("minItems"), n("maxItems"))),
        Value::Object(o) => Some(("properties", o.len() as f64, None, n("maxProperties"))),
        Value::Number(x) => x.as_f64().map(|x| ("value", x, n("minimum"), n("maximum"))),
        _ => None,
    };
    if let Some((what, got, min, max)) = size {
        if min.is_some_and(|m| got < m) || max.is_some_and(|m| got > m) {
            errors.push(format!("{at}: {what} {got} outside [{min:?}, {max:?}]"));
        }
    }
}

fn combinators(root: &Value, s: &serde_json::Map<String, Value>, v: &Value, at: &str, errors: &mut Vec<String>) {
    let passes = |sub: &Value| validate_at(root, sub, v, at).is_empty();
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            check(root, sub, v, at, errors);
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        if !any.iter().any(passes) {
            errors.push(format!("{at}: matches none of anyOf: {}", closest(root, any, v, at)));
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let matched = one.iter().filter(|sub| passes(sub)).count();
        if matched != 1 {
            errors.push(format!(
                "{at}: matches {matched} of oneOf, not exactly 1: {}",
                closest(root, one, v, at)
            ));
        }
    }
}

fn validate_at(root: &Value, s: &Value, v: &Value, at: &str) -> Vec<String> {
    let mut errors = Vec::new();
    check(root, s, v, at, &mut errors);
    errors
}

/// The errors of the alternative that came closest, to say why none matched.
fn closest(root: &Value, alternatives: &[Value], v: &Value, at: &str) -> String {
    alternatives
        .iter()
        .map(|sub| validate_at(root, sub, v, at))
        .min_by_key(Vec::len)
        .map(|e| e.join("; "))
        .unwrap_or_default()
}

fn object(
    root: &Value,
    s: &serde_json::Map<String, Value>,
    o: &serde_json::Map<String, Value>,
    at: &str,
    errors: &mut Vec<String>,
) {
    for r in s.get("required").and_then(Value::as_array).into_iter().flatten() {
        let key = r.as_str().unwrap_or_default();
        if !o.contains_key(key) {
            errors.push(format!("{at}: `{key}` is required"));
        }
    }
    let props = s.get("properties").and_then(Value::as_object);
    for (k, x) in o {
        match props.and_then(|p| p.get(k)) {
            Some(sub) => check(root, sub, x, &format!("{at}.{k}"), errors),
            None => match s.get("additionalProperties") {
                Some(Value::Bool(false)) => errors.push(format!("{at}: `{k}` is not allowed")),
                Some(extra @ Value::Object(_)) => check(root, extra, x, &format!("{at}.{k}"), errors),
                _ => {}
            },
        }
    }
}

#[test]
fn the_validator_can_fail() {
    let s = event_schema("response.output_text.delta");
    let good = serde_json::json!({"type": "response.output_text.delta", "item_id": "m", "output_index": 0,
        "content_index": 0, "delta": "x", "sequence_number": 3, "logprobs": []});
    assert_eq!(validate(&s, &good), Vec::<String>::new());
    let mut bad = good.clone();
    bad.as_object_mut().unwrap().remove("item_id");
    bad["output_index"] = serde_json::json!("0");
    assert_eq!(validate(&s, &bad).len(), 2, "{:?}", validate(&s, &bad));
}
