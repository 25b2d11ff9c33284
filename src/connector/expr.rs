//! The mapping language: lexer, parser to an AST, and evaluator over
//! `serde_json::Value`. The grammar is written down in docs/connector-spec.md.

use serde_json::Value;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {}

/// Why an expression could not be parsed: what went wrong, where, and the expression itself.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} at column {column} in `{source_text}`")]
pub struct ParseError {
    pub message: String,
    /// 1-based character column in the expression.
    pub column: usize,
    pub source_text: String,
}

/// Why an expression failed at run time (a filter given the wrong type, ...).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} in `{source_text}`")]
pub struct EvalError {
    pub message: String,
    pub source_text: String,
}

/// What an expression is evaluated against.
pub struct Scope<'a> {
    /// The value `.x` and `[].x` refer to: the current element or object.
    pub current: &'a Value,
    /// Named roots (`params`, `auth`, `device`, `context`, `api`) and, for
    /// `root:` and `context:`, the whole response body's top-level keys.
    pub vars: &'a Value,
}

/// Parses an expression such as `[].timestamp | divide: 1000000 | to_datetime`.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let _ = src;
    todo!("expr::parse")
}

impl Expr {
    /// Evaluates the expression; a missing path yields `null`, never an error.
    pub fn eval(&self, scope: &Scope<'_>) -> Result<Value, EvalError> {
        let _ = scope;
        todo!("Expr::eval")
    }
}
