//! `{{ }}` templates in URLs, query parameters, headers and bodies.

use serde_json::Value;

use super::expr::{self, Env, EvalError, ParseError, StrPiece};

/// A parsed template: literal text with embedded `{{ expression }}` parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<StrPiece>,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, ParseError> {
        Ok(Template {
            source: src.to_owned(),
            parts: expr::parse_template_parts(src)?,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders against `vars` (`{"params":…, "auth":…, "device":…, "context":…, "api":…}`).
    /// A template that is exactly one `{{ }}` keeps the value's type (so a
    /// `null` body field can be left out); otherwise the parts are joined as a string.
    /// `{{generate_uuid}}` yields a fresh UUID on every render.
    pub fn render(&self, vars: &Value) -> Result<Value, EvalError> {
        // Templates have no current value: `.x` in a template is null.
        let env = Env {
            current: &Value::Null,
            vars,
            body: None,
        };
        let eval = |node| {
            expr::eval_node(node, &env).map_err(|message| EvalError {
                message,
                source_text: self.source.clone(),
            })
        };
        if let [StrPiece::Expr(node)] = self.parts.as_slice() {
            return eval(node).map(std::borrow::Cow::into_owned);
        }
        let mut text = String::new();
        for part in &self.parts {
            match part {
                StrPiece::Text(literal) => text.push_str(literal),
                StrPiece::Expr(node) => expr::write_text(&*eval(node)?, &mut text),
            }
        }
        Ok(Value::String(text))
    }
}
