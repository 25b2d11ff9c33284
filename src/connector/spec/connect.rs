//! Checks of `auth.connect.playwright.steps`, the language
//! `scripts/playwright-runner.ts` executes. Steps stay JSON (they are rendered
//! and handed to the runner as written); this makes sure at load time that
//! every step has a known type and the fields it needs, that `url_matches`
//! patterns compile, and that `{input: NAME}` values name a declared input.

use std::sync::LazyLock;

use serde_json::{Map, Value};

use super::Problems;

/// Every step type the runner knows, for the "unknown step type" message.
const STEP_TYPES: &[&str] = &[
    "goto",
    "wait_for",
    "fail_if",
    "if_selector",
    "assert_cookies",
    "extract_cookies",
    "extract",
    "click",
    "fill",
    "type",
    "close",
];

/// A `{{ ... }}` template inside a `url_matches` pattern.
static TEMPLATE: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"\{\{.*?\}\}").expect("a valid regex"));

const CONDITION_KEYS: &[&str] = &["url_matches", "selector", "cookie"];

/// Checks `steps` (found at `field`); `inputs` are the declared input names.
pub(super) fn check_steps(
    problems: &mut Problems,
    field: &str,
    steps: &[Value],
    inputs: &[String],
) {
    for (index, step) in steps.iter().enumerate() {
        check_step(problems, &format!("{field}[{index}]"), step, inputs);
    }
}

fn check_step(problems: &mut Problems, field: &str, step: &Value, inputs: &[String]) {
    let (kind, args) = match step {
        Value::String(kind) => (kind.as_str(), &Value::Null),
        Value::Object(map) if map.len() == 1 => {
            let (kind, args) = map.iter().next().expect("one entry");
            (kind.as_str(), args)
        }
        _ => {
            problems.push(
                "auth",
                field,
                "a step is a step type (`close`) or a map with one key, the step type",
            );
            return;
        }
    };
    let at = format!("{field}.{kind}");
    let result = match kind {
        "goto" => url_or(args, "url", &["timeout"]).map(|_| ()),
        "click" => url_or(args, "selector", &["timeout"]).map(|_| ()),
        "wait_for" => conditions(args, &["timeout"], &[]),
        "fail_if" => conditions(args, &["timeout", "message"], &["kind"]),
        "if_selector" => {
            object(args, &["selector", "steps"], &["timeout"]).and_then(|map| match &map["steps"] {
                Value::Array(steps) => {
                    check_steps(problems, &format!("{at}.steps"), steps, inputs);
                    Ok(())
                }
                _ => Err("`steps` is a list of steps".to_owned()),
            })
        }
        "assert_cookies" => match args {
            Value::Array(names) => string_list(names, "assert_cookies"),
            _ => Err("assert_cookies is a list of cookie names".to_owned()),
        },
        "extract_cookies" => object(args, &["names"], &["optional"]).and_then(|map| {
            for key in ["names", "optional"] {
                match map.get(key) {
                    Some(Value::Array(names)) => string_list(names, key)?,
                    Some(_) => return Err(format!("`{key}` is a list of cookie names")),
                    None => {}
                }
            }
            Ok(())
        }),
        "extract" => object(args, &["selector", "as"], &["attribute", "timeout"]).map(|_| ()),
        "fill" | "type" => object(args, &["selector", "value"], &["timeout"])
            .and_then(|map| fill_value(&map["value"], inputs)),
        "close" => match args {
            Value::Null => Ok(()),
            _ => Err("close takes no arguments (write `- close`)".to_owned()),
        },
        other => Err(format!(
            "unknown step type `{other}` (known: {})",
            STEP_TYPES.join(", ")
        )),
    };
    if let Err(message) = result {
        problems.push("auth", at, message);
    }
}

/// A bare string (the `key`) or a map with `key` and `optional` fields.
fn url_or<'a>(args: &'a Value, key: &str, optional: &[&str]) -> Result<&'a Value, String> {
    match args {
        Value::String(_) => Ok(args),
        Value::Object(_) => object(args, &[key], optional).map(|_| args),
        _ => Err(format!("expected a {key} or a map with `{key}`")),
    }
}

/// A map holding every `required` key and nothing but those and `optional`.
fn object<'a>(
    args: &'a Value,
    required: &[&str],
    optional: &[&str],
) -> Result<&'a Map<String, Value>, String> {
    let Value::Object(map) = args else {
        return Err(format!("expected a map with {}", required.join(", ")));
    };
    if let Some(missing) = required.iter().find(|key| !map.contains_key(**key)) {
        return Err(format!("`{missing}` is required"));
    }
    if let Some(unknown) = map
        .keys()
        .find(|key| !required.contains(&key.as_str()) && !optional.contains(&key.as_str()))
    {
        return Err(format!(
            "unknown field `{unknown}` (known: {})",
            required
                .iter()
                .chain(optional)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(map)
}

fn string_list(names: &[Value], what: &str) -> Result<(), String> {
    match names.iter().all(Value::is_string) {
        true => Ok(()),
        false => Err(format!("`{what}` holds cookie names (strings)")),
    }
}

/// `{any: [conditions], ...}` or one condition written inline, plus `extra`
/// (optional) and `required` keys.
fn conditions(args: &Value, extra: &[&str], required: &[&str]) -> Result<(), String> {
    let map = match args {
        Value::Object(map) => map,
        _ => {
            return Err("expected a map: `any:` a list of conditions, or one condition".to_owned())
        }
    };
    let list: Vec<&Map<String, Value>> = match map.get("any") {
        Some(Value::Array(items)) => {
            let mut optional = extra.to_vec();
            optional.push("any");
            object(args, required, &optional)?;
            items
                .iter()
                .map(|item| match item {
                    Value::Object(condition) => Ok(condition),
                    _ => Err("each condition is a map".to_owned()),
                })
                .collect::<Result<_, _>>()?
        }
        Some(_) => return Err("`any` is a list of conditions".to_owned()),
        None => {
            let mut optional = extra.to_vec();
            optional.extend_from_slice(CONDITION_KEYS);
            object(args, required, &optional)?;
            vec![map]
        }
    };
    if list.is_empty() {
        return Err("needs a condition: url_matches, selector or cookie".to_owned());
    }
    for condition in list {
        let keys: Vec<&str> = condition
            .keys()
            .map(String::as_str)
            .filter(|key| CONDITION_KEYS.contains(key))
            .collect();
        if keys.len() != 1 {
            return Err(
                "each condition is exactly one of url_matches, selector or cookie".to_owned(),
            );
        }
        let Some(Value::String(text)) = condition.get(keys[0]) else {
            return Err(format!("`{}` is a string", keys[0]));
        };
        // JavaScript and Rust regular expressions agree on what specs use here
        // (anchors, classes, escapes): a pattern Rust rejects is a typo. A
        // template (`{{api.web_base_url}}`) becomes a URL, so it stands in as one.
        if keys[0] == "url_matches" {
            let pattern = TEMPLATE.replace_all(text, "https://example.com");
            if let Err(err) = regex::Regex::new(&pattern) {
                return Err(format!(
                    "url_matches `{text}` is not a regular expression: {err}"
                ));
            }
        }
    }
    Ok(())
}

/// A literal, `{input: NAME}` (a declared input) or `{prompt: NAME, message: TEXT}`.
fn fill_value(value: &Value, inputs: &[String]) -> Result<(), String> {
    match value {
        Value::String(_) => Ok(()),
        Value::Object(map) if map.contains_key("input") => {
            object(value, &["input"], &[])?;
            match &map["input"] {
                Value::String(name) if inputs.contains(name) => Ok(()),
                Value::String(name) => Err(format!(
                    "unknown input `{name}` (connect.playwright.inputs declares: {})",
                    inputs.join(", ")
                )),
                _ => Err("`input` is an input name".to_owned()),
            }
        }
        Value::Object(map) if map.contains_key("prompt") => {
            object(value, &["prompt"], &["message"]).map(|_| ())
        }
        _ => Err("`value` is a string, {input: NAME} or {prompt: NAME, message: TEXT}".to_owned()),
    }
}
