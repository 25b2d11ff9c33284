//! Parameter validation before any request: unknown names, required values,
//! types (with coercion of text input such as CLI `limit=20`), defaults,
//! `max` and enum values. A value above `max` is an error, never clamped, so
//! a caller learns the limit instead of silently getting less.

use indexmap::IndexMap;
use serde_json::{Map, Number, Value};

use super::expr::type_name;
use super::spec::{ParamKind, ParamSpec};

/// Checks `input` (a JSON object, or null for none) against an action's
/// parameter definitions and returns the object templates see as `params`,
/// with defaults applied and values coerced. File parameters are passed
/// through as given; the executor resolves them.
pub fn validate(definitions: &IndexMap<String, ParamSpec>, input: &Value) -> Result<Value, String> {
    let given = match input {
        Value::Null => Map::new(),
        Value::Object(given) => given.clone(),
        _ => return Err("parameters must be given as an object of name to value".to_owned()),
    };
    if let Some(unknown) = given.keys().find(|name| !definitions.contains_key(*name)) {
        let known: Vec<&str> = definitions.keys().map(String::as_str).collect();
        return Err(format!(
            "unknown parameter `{unknown}` (this action takes: {})",
            if known.is_empty() {
                "nothing".to_owned()
            } else {
                known.join(", ")
            }
        ));
    }
    let mut params = Map::new();
    for (name, definition) in definitions {
        let value = match given.get(name) {
            Some(Value::Null) | None => definition.default.clone(),
            Some(value) => Some(value.clone()),
        };
        match value {
            Some(value) if definition.kind == ParamKind::File => {
                params.insert(name.clone(), value);
            }
            Some(value) => {
                let value =
                    coerce(definition, &value).map_err(|message| format!("`{name}` {message}"))?;
                params.insert(name.clone(), value);
            }
            None if definition.required => return Err(format!("`{name}` is required")),
            None => {
                params.insert(name.clone(), Value::Null);
            }
        }
    }
    Ok(Value::Object(params))
}

/// Coerces one value to the parameter's type and checks `max` and enum values.
/// The message is phrased to follow the parameter's name.
pub fn coerce(definition: &ParamSpec, value: &Value) -> Result<Value, String> {
    let value = match definition.kind {
        ParamKind::String => match value {
            Value::String(_) => value.clone(),
            // Ids arrive as numbers from JSON callers (Instagram pks are integers).
            Value::Number(number) => Value::String(number.to_string()),
            Value::Bool(flag) => Value::String(flag.to_string()),
            _ => return Err(format!("must be a string, not {}", type_name(value))),
        },
        ParamKind::Number | ParamKind::Integer => {
            let number = match value {
                Value::Number(number) => number.clone(),
                Value::String(text) => parse_number(text.trim())
                    .ok_or_else(|| format!("must be a number, not `{text}`"))?,
                _ => return Err(format!("must be a number, not {}", type_name(value))),
            };
            if definition.kind == ParamKind::Integer && !(number.is_i64() || number.is_u64()) {
                return Err(format!("must be a whole number, not {number}"));
            }
            Value::Number(number)
        }
        ParamKind::Boolean => match value {
            Value::Bool(_) => value.clone(),
            Value::String(text) => match text.trim() {
                "true" | "yes" | "1" => Value::Bool(true),
                "false" | "no" | "0" => Value::Bool(false),
                _ => return Err(format!("must be true or false, not `{text}`")),
            },
            _ => return Err(format!("must be true or false, not {}", type_name(value))),
        },
        ParamKind::Array => {
            let items = match value {
                Value::Array(items) => items.clone(),
                // CLI input: a JSON array, or a comma-separated list.
                Value::String(text) if text.trim_start().starts_with('[') => {
                    match serde_json::from_str::<Value>(text) {
                        Ok(Value::Array(items)) => items,
                        _ => {
                            return Err("must be a JSON array or a comma-separated list".to_owned())
                        }
                    }
                }
                Value::String(text) => text
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| Value::String(item.to_owned()))
                    .collect(),
                single => vec![single.clone()],
            };
            let items = match &definition.items {
                Some(item_definition) => items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| {
                        coerce(item_definition, item)
                            .map_err(|message| format!("item {index} {message}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                None => items,
            };
            Value::Array(items)
        }
        ParamKind::Object => match value {
            Value::Object(_) => value.clone(),
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(object @ Value::Object(_)) => object,
                _ => return Err("must be a JSON object".to_owned()),
            },
            _ => return Err(format!("must be an object, not {}", type_name(value))),
        },
        ParamKind::Enum => {
            let matches = |allowed: &Value| allowed == value || as_text(allowed) == as_text(value);
            match definition.values.iter().find(|allowed| matches(allowed)) {
                Some(allowed) => allowed.clone(),
                None => {
                    let allowed: Vec<String> = definition
                        .values
                        .iter()
                        .map(|v| format!("`{}`", as_text(v)))
                        .collect();
                    return Err(format!(
                        "must be one of {}, not `{}`",
                        allowed.join(", "),
                        as_text(value)
                    ));
                }
            }
        }
        ParamKind::File => return Err("is a file and cannot be given as a value here".to_owned()),
    };
    check_max(definition, &value)?;
    if let (Some(pattern), Value::String(text)) = (&definition.pattern, &value) {
        // The value is not quoted back: it may be message text.
        if !pattern.0.is_match(text) {
            return Err(format!("must match the pattern {}", pattern.0.as_str()));
        }
    }
    Ok(value)
}

fn check_max(definition: &ParamSpec, value: &Value) -> Result<(), String> {
    let Some(max) = definition.max else {
        return Ok(());
    };
    let (size, what) = match value {
        Value::Number(number) => (number.as_f64().unwrap_or(f64::INFINITY), "at most"),
        Value::String(text) => (text.chars().count() as f64, "at most this many characters:"),
        Value::Array(items) => (items.len() as f64, "at most this many items:"),
        _ => return Ok(()),
    };
    if size > max {
        Err(format!("must be {what} {max}"))
    } else {
        Ok(())
    }
}

/// Parses text as an integer when it is one (keeping big ids exact), else as a float.
fn parse_number(text: &str) -> Option<Number> {
    if let Ok(int) = text.parse::<i64>() {
        return Some(Number::from(int));
    }
    if let Ok(int) = text.parse::<u64>() {
        return Some(Number::from(int));
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definitions() -> IndexMap<String, ParamSpec> {
        serde_norway::from_str(
            r#"
conversation_id: { type: string, required: true, pattern: "^[0-9]+$" }
limit: { type: number, default: 20, max: 50 }
filter: { type: enum, values: ["", "unread", "flagged"], default: "" }
user_ids: { type: array, items: { type: string } }
typing: { type: boolean, default: true }
"#,
        )
        .unwrap()
    }

    #[test]
    fn defaults_and_coercion_apply() {
        let params = validate(&definitions(), &json!({"conversation_id": 340282366841710300949128137443944319108_u128.to_string(), "limit": "30", "user_ids": "1,2", "typing": "false"})).unwrap();
        assert_eq!(
            params,
            json!({"conversation_id": "340282366841710300949128137443944319108", "limit": 30, "filter": "", "user_ids": ["1", "2"], "typing": false})
        );
        let params = validate(
            &definitions(),
            &json!({"conversation_id": 5, "user_ids": [17841400000000002_u64]}),
        )
        .unwrap();
        assert_eq!(params["conversation_id"], json!("5"));
        assert_eq!(params["limit"], json!(20));
        assert_eq!(params["user_ids"], json!(["17841400000000002"]));
    }

    #[test]
    fn bad_params_name_the_parameter() {
        let cases = [
            (json!({}), "`conversation_id` is required"),
            (json!({"conversation_id": "1", "limit": 51}), "`limit` must be at most 50"),
            (json!({"conversation_id": "1", "limit": "many"}), "`limit` must be a number, not `many`"),
            (json!({"conversation_id": "1", "filter": "spam"}), "`filter` must be one of ``, `unread`, `flagged`, not `spam`"),
            (json!({"conversation_id": "1", "typing": "maybe"}), "`typing` must be true or false, not `maybe`"),
            (json!({"conversation_id": "1", "limt": 3}), "unknown parameter `limt` (this action takes: conversation_id, limit, filter, user_ids, typing)"),
            (json!({"conversation_id": ["1"]}), "`conversation_id` must be a string, not an array"),
            (json!({"conversation_id": "1/../../users"}), "`conversation_id` must match the pattern ^[0-9]+$"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                validate(&definitions(), &input).unwrap_err(),
                expected,
                "{input}"
            );
        }
    }
}
