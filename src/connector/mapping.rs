//! Response mapping: `root:`, `context:` and `mapping:` of an action turn a
//! platform response into normalized JSON.

use std::borrow::Cow;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::expr::{self, Env, EvalError, Expr};

/// The `response:` section of an action, as written in the spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    #[serde(default)]
    pub root: Option<String>,
    /// Values taken from the whole response before `root:` applies.
    #[serde(default)]
    pub context: IndexMap<String, String>,
    #[serde(default)]
    pub mapping: Option<MappingNode>,
}

/// One node of a `mapping:` tree.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MappingNode {
    Expr(String),
    /// A list with one object template: build a list, one object per element.
    List(Vec<MappingNode>),
    Object(IndexMap<String, MappingNode>),
}

/// A problem in a response spec, with the dotted field path (`mapping.sender.id`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct MappingError {
    pub field: String,
    pub message: String,
}

/// A compiled `response:` section, ready to apply to many responses.
#[derive(Debug, Clone)]
pub struct ResponseMapping {
    root: Option<Expr>,
    context: Vec<(String, Expr)>,
    mapping: Option<CompiledNode>,
    /// The mapping uses the `[]` element marker: apply it to each value of an
    /// object root too (e.g. `user_presence`, an object keyed by user id).
    per_element: bool,
}

/// A `mapping:` node with its expressions parsed; `path` is its dotted field path.
#[derive(Debug, Clone)]
enum CompiledNode {
    Expr { path: String, expr: Expr },
    List(Box<CompiledNode>),
    Object(Vec<(String, CompiledNode)>),
}

impl CompiledNode {
    fn compile(node: &MappingNode, path: String, errors: &mut Vec<MappingError>) -> Option<Self> {
        match node {
            MappingNode::Expr(source) => match expr::parse(source) {
                Ok(expr) => Some(CompiledNode::Expr { path, expr }),
                Err(err) => {
                    errors.push(MappingError {
                        field: path,
                        message: err.to_string(),
                    });
                    None
                }
            },
            MappingNode::List(items) => {
                if items.len() != 1 {
                    errors.push(MappingError {
                        field: path,
                        message: format!(
                            "a list node holds exactly one template (an object or an expression), found {}",
                            items.len()
                        ),
                    });
                    return None;
                }
                let inner = Self::compile(&items[0], format!("{path}[0]"), errors)?;
                Some(CompiledNode::List(Box::new(inner)))
            }
            MappingNode::Object(fields) => {
                let mut compiled = Vec::with_capacity(fields.len());
                for (name, field) in fields {
                    if let Some(node) = Self::compile(field, format!("{path}.{name}"), errors) {
                        compiled.push((name.clone(), node));
                    }
                }
                Some(CompiledNode::Object(compiled))
            }
        }
    }

    fn uses_element_marker(&self) -> bool {
        match self {
            CompiledNode::Expr { expr, .. } => expr.uses_element_marker(),
            CompiledNode::List(inner) => inner.uses_element_marker(),
            CompiledNode::Object(fields) => {
                fields.iter().any(|(_, node)| node.uses_element_marker())
            }
        }
    }

    fn apply(&self, env: &Env<'_>) -> Result<Value, EvalError> {
        match self {
            CompiledNode::Expr { path, expr } => expr
                .eval_in(env)
                .map(Cow::into_owned)
                .map_err(|err| field_error(path, err)),
            CompiledNode::Object(fields) => {
                let mut object = Map::with_capacity(fields.len());
                for (name, node) in fields {
                    object.insert(name.clone(), node.apply(env)?);
                }
                Ok(Value::Object(object))
            }
            CompiledNode::List(inner) => match inner.as_ref() {
                CompiledNode::Expr { .. } => Ok(match inner.apply(env)? {
                    Value::Null => Value::Array(Vec::new()),
                    Value::Array(items) => Value::Array(items),
                    single => Value::Array(vec![single]),
                }),
                template => {
                    let columns = Columns::evaluate(template, env)?;
                    let rows = columns.rows();
                    Ok(Value::Array(
                        (0..rows).map(|row| columns.row(row)).collect(),
                    ))
                }
            },
        }
    }
}

/// A list template evaluated once: each leaf is a column (an array, one value
/// per row) or a single value repeated in every row.
enum Columns {
    Leaf(Value),
    Object(Vec<(String, Columns)>),
}

impl Columns {
    fn evaluate(node: &CompiledNode, env: &Env<'_>) -> Result<Columns, EvalError> {
        match node {
            CompiledNode::Object(fields) => fields
                .iter()
                .map(|(name, field)| Ok((name.clone(), Columns::evaluate(field, env)?)))
                .collect::<Result<Vec<_>, EvalError>>()
                .map(Columns::Object),
            leaf => leaf.apply(env).map(Columns::Leaf),
        }
    }

    /// The number of rows: the longest column; none at all without a column.
    fn rows(&self) -> usize {
        match self {
            Columns::Leaf(Value::Array(items)) => items.len(),
            Columns::Leaf(_) => 0,
            Columns::Object(fields) => fields
                .iter()
                .map(|(_, columns)| columns.rows())
                .max()
                .unwrap_or(0),
        }
    }

    fn row(&self, row: usize) -> Value {
        match self {
            Columns::Leaf(Value::Array(items)) => items.get(row).cloned().unwrap_or(Value::Null),
            Columns::Leaf(single) => single.clone(),
            Columns::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(name, columns)| (name.clone(), columns.row(row)))
                    .collect(),
            ),
        }
    }
}

fn field_error(path: &str, err: EvalError) -> EvalError {
    EvalError {
        message: format!("{path}: {}", err.message),
        source_text: err.source_text,
    }
}

impl ResponseMapping {
    /// Parses every expression and template in the section; every problem is reported.
    pub fn compile(spec: &ResponseSpec) -> Result<ResponseMapping, Vec<MappingError>> {
        let mut errors = Vec::new();
        let mut parse = |field: String, source: &str| match expr::parse(source) {
            Ok(expr) => Some(expr),
            Err(err) => {
                errors.push(MappingError {
                    field,
                    message: err.to_string(),
                });
                None
            }
        };
        let root = spec
            .root
            .as_deref()
            .and_then(|source| parse("root".to_owned(), source));
        let context: Vec<(String, Expr)> = spec
            .context
            .iter()
            .filter_map(|(name, source)| {
                parse(format!("context.{name}"), source).map(|expr| (name.clone(), expr))
            })
            .collect();
        let mapping = spec
            .mapping
            .as_ref()
            .and_then(|node| CompiledNode::compile(node, "mapping".to_owned(), &mut errors));
        if !errors.is_empty() {
            return Err(errors);
        }
        let per_element = mapping
            .as_ref()
            .is_some_and(CompiledNode::uses_element_marker);
        Ok(ResponseMapping {
            root,
            context,
            mapping,
            per_element,
        })
    }

    /// Maps `body` with `vars` (`params`, `auth`, `device`, `api`); `context:`
    /// values are added under `context`. With no `mapping:` the rooted body is returned;
    /// a null root maps to null.
    pub fn apply(&self, body: &Value, vars: &Value) -> Result<Value, EvalError> {
        let with_context;
        let vars = if self.context.is_empty() {
            vars
        } else {
            let whole = Env {
                current: body,
                vars,
                body: Some(body),
            };
            let mut context = Map::with_capacity(self.context.len());
            for (name, expr) in &self.context {
                let value = expr
                    .eval_in(&whole)
                    .map_err(|err| field_error(&format!("context.{name}"), err))?;
                context.insert(name.clone(), value.into_owned());
            }
            let mut extended = match vars {
                Value::Object(object) => object.clone(),
                _ => Map::new(),
            };
            extended.insert("context".to_owned(), Value::Object(context));
            with_context = Value::Object(extended);
            &with_context
        };
        let whole = Env {
            current: body,
            vars,
            body: Some(body),
        };
        let rooted = match &self.root {
            Some(root) => root
                .eval_in(&whole)
                .map_err(|err| field_error("root", err))?,
            None => Cow::Borrowed(body),
        };
        let Some(mapping) = &self.mapping else {
            return Ok(rooted.into_owned());
        };
        let apply_to = |current: &Value| {
            mapping.apply(&Env {
                current,
                vars,
                body: None,
            })
        };
        match rooted.as_ref() {
            // Nothing found (e.g. a filter that matched no item): say so rather than
            // return an object of nulls.
            Value::Null => Ok(Value::Null),
            Value::Array(items) => items
                .iter()
                .map(apply_to)
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Value::Object(object) if self.per_element => object
                .values()
                .map(apply_to)
                .collect::<Result<_, _>>()
                .map(Value::Array),
            single => apply_to(single),
        }
    }
}
