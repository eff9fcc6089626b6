//! `/functions` and `/functions/<name>`: graphite-web's description of every render function,
//! built from Carbide's own registry so that Grafana's function editor offers exactly what is
//! implemented.

use serde_json::{json, Map, Value};

use super::reply::{Params, Reply};
use crate::query::functions::{self, FunctionDef, Literal};

/// Infinite defaults are written `1e9999`, as graphite-web's encoder does; serde_json has no
/// infinity, so they travel as this marker and are replaced at the end.
const INFINITY_MARK: &str = "carbide-infinity-9e7c1f";

fn literal(l: &Literal) -> Value {
    match *l {
        Literal::Str(s) => Value::from(s),
        Literal::Int(i) => Value::from(i),
        Literal::Bool(b) => Value::from(b),
        Literal::None => Value::Null,
        Literal::Float(f) if f.is_infinite() => Value::from(if f > 0.0 {
            INFINITY_MARK.to_string()
        } else {
            format!("-{INFINITY_MARK}")
        }),
        Literal::Float(f) => Value::from(f),
    }
}

/// One function as graphite-web's `functionInfo` describes it.
pub fn info(def: &FunctionDef) -> Value {
    let params: Vec<Value> = def
        .params
        .iter()
        .map(|p| {
            let mut m = Map::new();
            m.insert("name".into(), Value::from(p.name));
            m.insert("type".into(), Value::from(p.ty.name()));
            if p.required {
                m.insert("required".into(), Value::from(true));
            }
            if let Some(d) = &p.default {
                m.insert("default".into(), literal(d));
            }
            if p.multiple {
                m.insert("multiple".into(), Value::from(true));
            }
            if !p.options.is_empty() || !p.literal_options.is_empty() {
                let options = p.literal_options.iter().map(literal);
                let options = options.chain(p.options.iter().map(|&o| Value::from(o)));
                m.insert("options".into(), Value::Array(options.collect()));
            }
            if !p.suggestions.is_empty() {
                m.insert(
                    "suggestions".into(),
                    Value::Array(p.suggestions.iter().map(literal).collect()),
                );
            }
            Value::Object(m)
        })
        .collect();
    json!({
        "name": def.name,
        "function": def.signature,
        "description": def.description,
        "module": "graphite.render.functions",
        "group": def.group,
        "params": params,
    })
}

fn encode(v: &Value, params: &Params) -> Reply {
    let body = if params.get("pretty").is_some_and(|p| !p.is_empty()) {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    }
    .unwrap_or_default()
    .replace(&format!("\"-{INFINITY_MARK}\""), "-1e9999")
    .replace(&format!("\"{INFINITY_MARK}\""), "1e9999");
    Reply::json_or_jsonp(body, params.get("jsonp"))
}

/// `/functions` with graphite-web's `grouped`, `group` and `type` parameters.
pub fn list(params: &Params) -> Reply {
    if params.get("type") == Some("pie") {
        return encode(&json!({}), params);
    }
    let grouped = matches!(
        params
            .get("grouped")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("1") | Some("true")
    );
    let group = params.get("group");
    let mut result = Map::new();
    for def in functions::all() {
        if group.is_some_and(|g| g != def.group) {
            continue;
        }
        if grouped {
            let entry = result
                .entry(def.group.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = entry {
                m.insert(def.name.to_string(), info(def));
            }
        } else {
            result.insert(def.name.to_string(), info(def));
        }
    }
    encode(&Value::Object(result), params)
}

/// `/functions/<name>`.
pub fn details(name: &str, params: &Params) -> Reply {
    match functions::lookup(name) {
        Some(def) => encode(&info(def), params),
        None => {
            let body = json!({"error": format!("Function not found: {name}")}).to_string();
            Reply::new(404, "application/json", body)
        }
    }
}
