//! The mapping language: lexer, parser to an AST, and evaluator over
//! `serde_json::Value`. The grammar is written down in docs/connector-spec.md.

mod ast;
mod attachment;
mod eval;
mod filters;
mod lexer;
mod parser;

use std::borrow::Cow;

use serde_json::Value;

pub(crate) use ast::StrPiece;
pub(crate) use eval::{eval as eval_node, write_text, Env};
pub(crate) use lexer::SourceKind;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    source: String,
    root: ast::Node,
}

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
    let tokens = lexer::tokenize(src, SourceKind::Expression)
        .map_err(|err| parse_error(src, err.message, err.pos))?;
    let root =
        parser::parse_expression(&tokens).map_err(|err| parse_error(src, err.message, err.pos))?;
    Ok(Expr {
        source: src.to_owned(),
        root,
    })
}

/// Parses a template's source into literal text and expression parts.
pub(crate) fn parse_template_parts(src: &str) -> Result<Vec<StrPiece>, ParseError> {
    let tokens = lexer::tokenize(src, SourceKind::Template)
        .map_err(|err| parse_error(src, err.message, err.pos))?;
    parser::parse_template(&tokens).map_err(|err| parse_error(src, err.message, err.pos))
}

fn parse_error(src: &str, message: String, pos: usize) -> ParseError {
    ParseError {
        message,
        column: pos + 1,
        source_text: src.to_owned(),
    }
}

impl Expr {
    /// Evaluates the expression; a missing path yields `null`, never an error.
    pub fn eval(&self, scope: &Scope<'_>) -> Result<Value, EvalError> {
        let env = Env {
            current: scope.current,
            vars: scope.vars,
            body: None,
        };
        self.eval_in(&env).map(Cow::into_owned)
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates in a full environment, borrowing from the input where possible.
    pub(crate) fn eval_in<'a>(&self, env: &Env<'a>) -> Result<Cow<'a, Value>, EvalError> {
        eval::eval(&self.root, env).map_err(|message| EvalError {
            message,
            source_text: self.source.clone(),
        })
    }

    /// Whether the expression uses the leading `[]` element marker, i.e. it is
    /// meant to be applied to each element of a list (or each value of an object).
    pub(crate) fn uses_element_marker(&self) -> bool {
        self.root.uses_element_marker()
    }
}
