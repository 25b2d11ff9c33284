//! `{{ }}` templates in URLs, query parameters, headers and bodies.

use serde_json::Value;

use super::expr::{self, Env, EvalError, ParseError, RootRef, StrPiece};

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

    /// Every named root the template's `{{ }}` parts read, in source order.
    pub fn referenced_roots(&self) -> Vec<RootRef<'_>> {
        let mut roots = Vec::new();
        expr::collect_piece_roots(&self.parts, &mut roots);
        roots
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Value {
        json!({
            "params": {
                "limit": 20,
                "conversation_id": "340282366841710300949128137443944319108",
                "user_ids": ["17841400000000002", "17841400000000003"],
                "reply_to": null,
                "text": "{{auth.cookies.sessionid}} it's",
            },
            "auth": {"cookies": {"csrftoken": "csrf-abc", "sessionid": "SECRET"}, "ig_www_claim": null},
            "device": {"uuid": "8f0c1c3e-2f55-4a39-9d63-1f0d3e0f2a11"},
            "api": {"base_url": "https://i.instagram.com/api/v1"},
            "username": "bridge.tester",
        })
    }

    fn render(src: &str, vars: &Value) -> Value {
        Template::parse(src)
            .unwrap_or_else(|err| panic!("{err}"))
            .render(vars)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn seed_templates_render() {
        let vars = vars();
        for (src, expected) in [
            ("{{params.limit}}", json!(20)),
            ("{{auth.cookies.csrftoken}}", json!("csrf-abc")),
            ("{{device.uuid}}", json!("8f0c1c3e-2f55-4a39-9d63-1f0d3e0f2a11")),
            ("{{params.reply_to ? 'swipe' : null}}", Value::Null),
            ("{{params.reply_to}}", Value::Null),
            ("[{{params.conversation_id}}]", json!("[340282366841710300949128137443944319108]")),
            ("[[{{params.conversation_id}}]]", json!("[[340282366841710300949128137443944319108]]")),
            ("{{api.base_url}}/direct_v2/inbox/", json!("https://i.instagram.com/api/v1/direct_v2/inbox/")),
            (
                "{{api.base_url}}/direct_v2/threads/{{params.conversation_id}}/",
                json!("https://i.instagram.com/api/v1/direct_v2/threads/340282366841710300949128137443944319108/"),
            ),
            ("{{auth.ig_www_claim | default: '0'}}", json!("0")),
            ("{{params.user_ids | to_json}}", json!("[\"17841400000000002\",\"17841400000000003\"]")),
            ("Connected to Instagram as @{{username}}!", json!("Connected to Instagram as @bridge.tester!")),
            ("{{ params.limit }} items", json!("20 items")),
            ("reply: {{params.reply_to}}.", json!("reply: .")),
            ("{\"message_content\":\"0\",\"reshared_content\":\"\"}", json!("{\"message_content\":\"0\",\"reshared_content\":\"\"}")),
            ("unread", json!("unread")),
            ("", json!("")),
        ] {
            assert_eq!(render(src, &vars), expected, "{src}");
        }
        let mut replying = vars.clone();
        replying["params"]["reply_to"] = json!("32259282530591827013512481076150272");
        assert_eq!(
            render("{{params.reply_to ? 'swipe' : null}}", &replying),
            json!("swipe")
        );
    }

    #[test]
    fn values_are_never_re_read_as_templates() {
        assert_eq!(
            render("text={{params.text}}", &vars()),
            json!("text={{auth.cookies.sessionid}} it's")
        );
    }

    #[test]
    fn generate_uuid_is_fresh_on_every_render() {
        let template = Template::parse("{{generate_uuid}}").unwrap();
        let first = template.render(&vars()).unwrap();
        let second = template.render(&vars()).unwrap();
        assert_ne!(first, second);
        assert_eq!(
            uuid::Uuid::parse_str(first.as_str().unwrap()).map(|id| id.get_version_num()),
            Ok(4)
        );
    }

    #[test]
    fn malformed_templates_are_refused_with_a_column() {
        for (src, needle, column) in [
            ("{{api.base_url}/inbox", "`{{` is closed by `}}`", 15),
            ("{{api.base_url", "unclosed `{{`", 1),
            ("a }} b", "stray `}}`", 3),
            ("{{ }}", "expected a value, found `}}`", 4),
            ("x{{ a | nope }}", "unknown filter `nope`", 9),
            ("{{ 'open }}", "unterminated string", 4),
            (
                "{{ a b }}",
                "expected `}}` to close the `{{` at column 1",
                6,
            ),
        ] {
            let err = Template::parse(src).unwrap_err();
            assert!(err.message.contains(needle), "`{src}`: {err}");
            assert_eq!(err.column, column, "`{src}`: {err}");
            assert_eq!(err.source_text, src);
        }
    }

    #[test]
    fn render_errors_do_not_leak_values() {
        let err = Template::parse("{{auth.cookies.sessionid | divide: 3}}")
            .unwrap()
            .render(&vars())
            .unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
        assert!(err.message.contains("divide"), "{err}");
    }
}
