//! `{{ }}` templates in URLs, query parameters, headers and bodies.

use serde_json::Value;

use super::expr::{EvalError, ParseError};

/// A parsed template: literal text with embedded `{{ expression }}` parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {}

impl Template {
    pub fn parse(src: &str) -> Result<Template, ParseError> {
        let _ = src;
        todo!("Template::parse")
    }

    /// Renders against `vars` (`{"params":…, "auth":…, "device":…, "context":…, "api":…}`).
    /// A template that is exactly one `{{ }}` keeps the value's type (so a
    /// `null` body field can be left out); otherwise the parts are joined as a string.
    /// `{{generate_uuid}}` yields a fresh UUID on every render.
    pub fn render(&self, vars: &Value) -> Result<Value, EvalError> {
        let _ = vars;
        todo!("Template::render")
    }
}
