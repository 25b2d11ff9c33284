//! Response mapping: `root:`, `context:` and `mapping:` of an action turn a
//! platform response into normalized JSON.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use super::expr::EvalError;

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
pub struct ResponseMapping {}

impl ResponseMapping {
    /// Parses every expression and template in the section; every problem is reported.
    pub fn compile(spec: &ResponseSpec) -> Result<ResponseMapping, Vec<MappingError>> {
        let _ = spec;
        todo!("ResponseMapping::compile")
    }

    /// Maps `body` with `vars` (`params`, `auth`, `device`, `api`); `context:`
    /// values are added under `context`. With no `mapping:` the rooted body is returned.
    pub fn apply(&self, body: &Value, vars: &Value) -> Result<Value, EvalError> {
        let _ = (body, vars);
        todo!("ResponseMapping::apply")
    }
}
