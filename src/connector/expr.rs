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

pub use ast::RootRef;
pub(crate) use ast::{collect_piece_roots, StrPiece};
pub(crate) use eval::{eval as eval_node, truthy, write_text, Env};
pub(crate) use filters::type_name;
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

    /// Every named root the expression reads (`params.text` → `params`, `text`),
    /// found by walking the syntax tree; the spec loader checks them.
    pub fn referenced_roots(&self) -> Vec<RootRef<'_>> {
        let mut roots = Vec::new();
        self.root.collect_roots(&mut roots);
        roots
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

/// Reads a recorded Instagram response from tests/fixtures/instagram.
#[cfg(test)]
pub(crate) fn instagram_fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/instagram/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{path}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Evaluates `src` with `current` and `vars`, panicking on any error.
    fn eval_with(src: &str, current: &Value, vars: &Value) -> Value {
        parse(src)
            .unwrap_or_else(|err| panic!("{err}"))
            .eval(&Scope { current, vars })
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// Evaluates `src` the way `root:` is: the body's top-level keys are bare names.
    fn eval_root(src: &str, body: &Value, vars: &Value) -> Value {
        let env = Env {
            current: body,
            vars,
            body: Some(body),
        };
        parse(src)
            .unwrap()
            .eval_in(&env)
            .unwrap_or_else(|err| panic!("{err}"))
            .into_owned()
    }

    fn parse_err(src: &str) -> ParseError {
        match parse(src) {
            Ok(expr) => panic!("`{src}` parsed as {expr:?}"),
            Err(err) => err,
        }
    }

    /// Every expression of the seed spec (instagram-connector-spec.md), verbatim.
    const SEED_EXPRESSIONS: &[&str] = &[
        "user",
        ".pk",
        ".username",
        "inbox.threads",
        "[].thread_id",
        "[].thread_type == 'private' ? 'direct' : 'group'",
        "[].thread_title",
        "[].users[].pk",
        "[].users[].full_name",
        "[].users[].username",
        "[].read_state",
        "[].last_activity_at | divide: 1000000 | to_datetime",
        "'instagram'",
        "thread",
        ".thread_id",
        ".thread_type == 'private' ? 'direct' : 'group'",
        ".thread_title",
        ".users[].pk",
        ".users[].full_name",
        ".users[].username",
        ".last_activity_at | divide: 1000000 | to_datetime",
        "thread.items",
        "thread.viewer_id",
        "[].item_id",
        "'{{params.conversation_id}}'",
        "[].text",
        "'text'",
        "[].user_id",
        "'user'",
        "[].user_id == {{context.viewer_id}}",
        "[].timestamp | divide: 1000000 | to_datetime",
        "[].reactions.emojis",
        "[].replied_to_message.item_id",
        "[].replied_to_message.text",
        "[].media | to_attachment",
        "thread.items[?item_id=='{{params.message_id}}'] | [0]",
        ".item_id",
        ".text",
        ".user_id",
        ".timestamp | divide: 1000000 | to_datetime",
        ".reactions.emojis",
        "message_search_results.message_search_result_items",
        "[].matched_message_info.item_info.item_id",
        "[].thread.thread_id",
        "[].matched_message_info.item_info.text",
        "[].matched_message_info.item_info.timestamp | divide: 1000000 | to_datetime",
        "inbox.threads[*].items[0]",
        "false",
        "user_presence",
        "[].is_active",
        "[].last_activity_at_ms | divide: 1000 | to_datetime",
        "payload",
        "'{{params.text}}'",
        "true",
        ".status == 'ok'",
    ];

    #[test]
    fn every_seed_expression_parses() {
        for src in SEED_EXPRESSIONS {
            let expr = parse(src).unwrap_or_else(|err| panic!("{err}"));
            assert_eq!(expr.source(), *src);
        }
    }

    #[test]
    fn referenced_roots_come_from_the_syntax_tree() {
        let roots = |src: &str| -> Vec<(String, Option<String>)> {
            parse(src)
                .unwrap()
                .referenced_roots()
                .iter()
                .map(|root| (root.name.to_owned(), root.field.map(str::to_owned)))
                .collect()
        };
        let named = |name: &str, field: Option<&str>| (name.to_owned(), field.map(str::to_owned));
        assert_eq!(
            roots("thread.items[?item_id=='{{params.message_id}}'] | [0]"),
            [
                named("thread", Some("items")),
                named("params", Some("message_id"))
            ]
        );
        // Names inside a predicate are the element's fields, not roots.
        assert_eq!(roots("items[?user_id == '1']"), [named("items", None)]);
        assert_eq!(
            roots(".thread_id | default: params.conversation_id"),
            [named("params", Some("conversation_id"))]
        );
        assert_eq!(
            roots("[].user_id == {{context.viewer_id}} ? auth[0] : !device.uuid"),
            [
                named("context", Some("viewer_id")),
                named("auth", None),
                named("device", Some("uuid"))
            ]
        );
        assert_eq!(
            roots("(steps.upload | first).media_id"),
            [named("steps", Some("upload"))]
        );
        // A name only quoted in a string is not read.
        assert_eq!(roots("'params.txt' == generate_uuid"), []);
        assert_eq!(
            crate::connector::template::Template::parse("a{{vars.x}}b{{api.base_url}}")
                .unwrap()
                .referenced_roots(),
            [
                RootRef {
                    name: "vars",
                    field: Some("x")
                },
                RootRef {
                    name: "api",
                    field: Some("base_url")
                }
            ]
        );
    }

    #[test]
    fn roots_and_paths_on_the_inbox() {
        let inbox = instagram_fixture("inbox.json");
        let none = json!({});
        let threads = eval_root("inbox.threads", &inbox, &none);
        assert_eq!(threads.as_array().map(Vec::len), Some(2));
        let first = &threads[0];
        assert_eq!(
            eval_with("[].thread_id", first, &none),
            json!("340282366841710301244276120666290001122")
        );
        assert_eq!(
            eval_with("[].thread_title", first, &none),
            json!("Weekend plans")
        );
        assert_eq!(
            eval_with("[].users[].pk", first, &none),
            json!([
                17841400000000002u64,
                17841400000000003u64,
                17841400000000004u64
            ])
        );
        assert_eq!(
            eval_with("[].users[].username", first, &none),
            json!(["alice.wonder", "bob_builder", "carol.singer"])
        );
        // Over the whole list, a leading `[]` projects: one list of names per thread.
        assert_eq!(
            eval_with("[].users[].full_name", &threads, &none),
            json!([["Alice W", "Bob B", "Carol S"], ["Alice W"]])
        );
        assert_eq!(
            eval_with("[].thread_id", &threads, &none),
            json!([
                "340282366841710301244276120666290001122",
                "340282366841710300949128137443944319108"
            ])
        );
        assert_eq!(
            eval_with(
                "[].last_activity_at | divide: 1000000 | to_datetime",
                first,
                &none
            ),
            json!("2025-06-01T12:12:10.159Z")
        );
        // Instagram calls every thread `private`: the seed's ternary cannot tell groups;
        // `is_group` can.
        assert_eq!(
            eval_with(
                "[].thread_type == 'private' ? 'direct' : 'group'",
                first,
                &none
            ),
            json!("direct")
        );
        let kinds: Vec<Value> = threads
            .as_array()
            .unwrap()
            .iter()
            .map(|thread| eval_with("[].is_group ? 'group' : 'direct'", thread, &none))
            .collect();
        assert_eq!(kinds, [json!("group"), json!("direct")]);
    }

    #[test]
    fn wildcard_projection_then_index_takes_each_threads_newest_item() {
        let inbox = instagram_fixture("inbox.json");
        let newest = eval_root("inbox.threads[*].items[0]", &inbox, &json!({}));
        assert_eq!(
            eval_with("[].item_id", &newest, &json!({})),
            json!([
                "32259295812882884397032275263356928",
                "32259219626183506514749597411180544"
            ])
        );
        assert_eq!(
            eval_with("[].text", &newest, &json!({})),
            json!([null, "friday works ☕"])
        );
    }

    #[test]
    fn filter_projection_piped_into_an_index() {
        let page = instagram_fixture("thread_group_page2_older.json");
        let vars = json!({"params": {"message_id": "32259283637437460101417360659841024"}});
        let item = eval_root(
            "thread.items[?item_id=='{{params.message_id}}'] | [0]",
            &page,
            &vars,
        );
        assert_eq!(item["text"], json!("perfect, see you there 🎉"));
        assert_eq!(
            eval_with(".reactions.emojis[].emoji", &item, &vars),
            json!(["😂", "❤️"])
        );
        let vars = json!({"params": {"message_id": "no-such-item"}});
        assert_eq!(
            eval_root(
                "thread.items[?item_id=='{{params.message_id}}'] | [0]",
                &page,
                &vars
            ),
            Value::Null
        );
        // Bare names in a predicate are the element's fields; numbers compare to strings.
        assert_eq!(
            eval_root(
                "thread.items[?user_id == '17841400000000001'] | length",
                &page,
                &vars
            ),
            json!(2)
        );
    }

    #[test]
    fn a_parameter_holding_quotes_cannot_change_the_expression() {
        let current = json!({"item_id": "a' || 'x' == 'x"});
        let hostile = json!({"params": {"id": "a' || 'x' == 'x", "other": "b"}});
        assert_eq!(
            eval_with(
                "'{{params.id}}' == 'a\\' || \\'x\\' == \\'x'",
                &current,
                &hostile
            ),
            json!(true)
        );
        assert_eq!(
            eval_with(".item_id == '{{params.other}}'", &current, &hostile),
            json!(false)
        );
        let items = json!([{"item_id": "1"}, {"item_id": "2"}]);
        let injected = json!({"params": {"message_id": "1' || true || '"}});
        assert_eq!(
            eval_with("[?item_id=='{{params.message_id}}']", &items, &injected),
            json!([])
        );
        assert_eq!(
            eval_with("'{{params.id}}'", &current, &hostile),
            json!("a' || 'x' == 'x")
        );
    }

    #[test]
    fn embedded_template_is_an_expression_node() {
        let vars = json!({"context": {"viewer_id": 17841400000000001u64}});
        let mine = json!({"user_id": 17841400000000001u64});
        let theirs = json!({"user_id": "17841400000000002"});
        let expr = "[].user_id == {{context.viewer_id}}";
        assert_eq!(eval_with(expr, &mine, &vars), json!(true));
        assert_eq!(eval_with(expr, &theirs, &vars), json!(false));
        assert_eq!(
            eval_with("{{ context.viewer_id }}", &Value::Null, &vars),
            json!(17841400000000001u64)
        );
    }

    #[test]
    fn equality_is_lenient_about_ids_only() {
        let none = json!({});
        for (src, expected) in [
            ("123 == '123'", true),
            ("'123' == 123", true),
            ("18446744073709551615 == '18446744073709551615'", true),
            ("123 == '0123'", false),
            ("123 != '124'", true),
            ("1 == 1.0", true),
            ("'a' == 'a'", true),
            ("null == false", false),
            ("true && 'x' || false", true),
            ("!null", true),
            ("!0", false),
            ("2 < '10'", true),
            ("'b' > 'a'", true),
            ("missing.path == null", true),
        ] {
            assert_eq!(eval_with(src, &none, &none), json!(expected), "{src}");
        }
        assert_eq!(eval_with("1 < 'a'", &none, &none), Value::Null);
    }

    #[test]
    fn missing_paths_and_projections_over_null_are_null() {
        let body = json!({"a": {"b": [1, 2]}, "s": "text"});
        let none = json!({});
        for src in [
            "nope",
            "a.c.d",
            "a.b[5]",
            "a.b.c",
            "s.x",
            "s[0]",
            "nope[].x",
            "nope[*].x",
            "nope[?x]",
            "[].x",
        ] {
            assert_eq!(eval_root(src, &body, &none), Value::Null, "{src}");
        }
        assert_eq!(eval_root("a.b[-1]", &body, &none), json!(2));
        assert_eq!(eval_root("a.b[-3]", &body, &none), Value::Null);
    }

    #[test]
    fn big_integers_are_copied_exactly() {
        let page = instagram_fixture("inbox_page2_older.json");
        let text = serde_json::to_string(&page).unwrap();
        assert!(
            text.contains("18446744073709551615"),
            "fixture holds u64::MAX"
        );
        let vars =
            json!({"cursor": {"max": 18446744073709551615u64, "min": -9223372036854775808i64}});
        assert_eq!(
            eval_with("cursor.max", &Value::Null, &vars),
            json!(18446744073709551615u64)
        );
        assert_eq!(
            eval_with("cursor.max | to_string", &Value::Null, &vars),
            json!("18446744073709551615")
        );
        assert_eq!(
            eval_with("cursor.min", &Value::Null, &vars),
            json!(-9223372036854775808i64)
        );
    }

    #[test]
    fn object_values_project_like_arrays() {
        let presence = instagram_fixture("fetch_and_subscribe_presence.json");
        let vars = json!({});
        assert_eq!(
            eval_root("user_presence[*].user_id", &presence, &vars),
            json!(["17841400000000002", "17841400000000003"])
        );
        assert_eq!(
            eval_root("user_presence[?is_active].user_id", &presence, &vars),
            json!(["17841400000000002"])
        );
        assert_eq!(
            eval_root("user_presence | values | length", &presence, &vars),
            json!(2)
        );
    }

    #[test]
    fn pipes_filters_and_functions() {
        let vars = json!({
            "params": {"user_ids": ["1", "2"], "limit": 20, "reply_to": null, "tags": ["a", "b"]},
            "auth": {"ig_www_claim": ""},
        });
        let none = Value::Null;
        assert_eq!(
            eval_with("params.user_ids | to_json", &none, &vars),
            json!("[\"1\",\"2\"]")
        );
        assert_eq!(
            eval_with("auth.ig_www_claim | default: '0'", &none, &vars),
            json!("0")
        );
        // `default` evaluates its argument only for a blank input.
        let failing_default = "params.limit | default: (1 | divide: 0)";
        assert_eq!(eval_with(failing_default, &none, &vars), json!(20));
        let err = parse("params.reply_to | default: (1 | divide: 0)")
            .unwrap()
            .eval(&Scope {
                current: &none,
                vars: &vars,
            })
            .unwrap_err();
        assert!(err.message.contains("divide"), "{err}");
        assert_eq!(
            eval_with("params.reply_to ? 'swipe' : null", &none, &vars),
            Value::Null
        );
        assert_eq!(
            eval_with("params.tags | join: '+'", &none, &vars),
            json!("a+b")
        );
        assert_eq!(
            eval_with("params.limit | multiply: 2 | divide: 8", &none, &vars),
            json!(5)
        );
        assert_eq!(
            eval_with("(params.tags | first) == 'a'", &none, &vars),
            json!(true)
        );
        assert_eq!(eval_with("params.tags | [1]", &none, &vars), json!("b"));
        assert_eq!(eval_with("params['user_ids'][0]", &none, &vars), json!("1"));
        let first = eval_with("generate_uuid", &none, &vars);
        let second = eval_with("generate_uuid()", &none, &vars);
        assert_ne!(first, second);
        assert!(uuid::Uuid::parse_str(first.as_str().unwrap()).is_ok());
        let tokens: Vec<u64> = (0..200)
            .map(|_| {
                let token = eval_with("generate_mutation_token", &none, &vars);
                let text = token.as_str().unwrap().to_owned();
                assert_eq!(text.len(), 19, "{text}");
                text.parse().unwrap()
            })
            .collect();
        assert!(tokens
            .iter()
            .all(|token| (6_800_011_111_111_111_111..=6_800_099_999_999_999_999).contains(token)));
        assert_ne!(tokens[0], tokens[1]);
        let now = eval_with("now_ms", &none, &vars).as_u64().unwrap();
        assert!(
            now > 1_700_000_000_000,
            "milliseconds since the epoch: {now}"
        );
        assert_eq!(
            eval_with("generate_mutation_token()", &none, &vars)
                .as_str()
                .map(str::len),
            Some(19)
        );
    }

    #[test]
    fn runtime_errors_name_the_filter_not_the_value() {
        let vars = json!({"auth": {"sessionid": "SECRET-SESSION"}});
        let err = parse("auth.sessionid | divide: 2")
            .unwrap()
            .eval(&Scope {
                current: &Value::Null,
                vars: &vars,
            })
            .unwrap_err();
        assert!(err.message.contains("divide"), "{err}");
        assert!(!err.to_string().contains("SECRET"), "{err}");
        assert_eq!(err.source_text, "auth.sessionid | divide: 2");
    }

    #[test]
    fn malformed_expressions_give_a_message_and_a_column() {
        for (src, needle, column) in [
            ("'unterminated", "unterminated string", 1),
            ("a == 'open", "unterminated string", 6),
            ("a ==", "expected a value, found the end of the input", 5),
            (
                "thread.items[?",
                "expected a value, found the end of the input",
                15,
            ),
            (
                "items[?x == 1",
                "expected `]` to close the `[` at column 6",
                14,
            ),
            ("a | unknown_filter", "unknown filter `unknown_filter`", 5),
            (
                "a | divide",
                "filter `divide` takes 1 argument(s), got 0",
                5,
            ),
            (
                "'{{params.x'",
                "unterminated string (missing closing `'`) inside the `{{` at column 2",
                12,
            ),
            ("{{ params.x", "unclosed `{{`", 1),
            ("a }}", "stray `}}`", 3),
            (
                "a ? b",
                "expected `:` to complete the conditional `?` at column 3",
                6,
            ),
            ("a b", "unexpected `b` after a complete expression", 3),
            ("a = b", "comparison is `==`", 3),
            ("\"double\"", "single quotes", 1),
            ("a.", "expected a field name after `.`", 3),
            ("a[1.5]", "array index must be an integer", 3),
            ("a[x]", "expected an index", 3),
            ("(a", "expected `)` to close the `(` at column 1", 3),
            ("a |", "expected a filter name or a path", 4),
            ("'\\q'", "unknown escape", 2),
            ("foo()", "unknown function `foo`", 1),
            ("99999999999999999999999", "out of range", 1),
            ("", "expected a value, found the end of the input", 1),
            ("a # b", "unexpected character `#`", 3),
        ] {
            let err = parse_err(src);
            assert!(
                err.message.contains(needle),
                "`{src}`: {:?} lacks {needle:?}",
                err.message
            );
            assert_eq!(err.column, column, "`{src}`: {err}");
            assert_eq!(err.source_text, src);
        }
        let deep = format!("{}a{}", "(".repeat(500), ")".repeat(500));
        assert!(parse_err(&deep).message.contains("nested"));
        let chain = vec!["a"; 5000].join(" == ");
        assert!(parse_err(&chain).message.contains("nested"));
        let projections = format!("a{}", "[]".repeat(5000));
        assert!(parse_err(&projections).message.contains("nested"));
        let pipes = format!("a{}", " | first".repeat(5000));
        assert!(parse_err(&pipes).message.contains("nested"));
    }

    #[test]
    fn error_display_names_expression_and_column() {
        assert_eq!(
            parse_err("[].x | nope").to_string(),
            format!(
                "unknown filter `nope` (known: {}) at column 8 in `[].x | nope`",
                filters::Filter::names()
            )
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            "[a-z0-9 ']{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-c]", inner, 0..5)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn no_input_panics_the_parsers(src in "\\PC{0,40}") {
            let _ = parse(&src);
            let _ = crate::connector::template::Template::parse(&src);
        }

        #[test]
        fn parse_then_eval_never_panics(
            src in "[a-c.\\[\\]?*@!|:=<>&(),{}' 0-9-]{0,24}|([a-c]|\\.[a-c]|\\[\\]|\\[\\*\\]|\\[0\\]|\\[-1\\]|\\[\\?[a-c]\\]| \\| (divide: 0|divide: 2|multiply: 3|to_datetime|to_json|to_string|to_number|default: 'x'|to_attachment|largest|split: 'a'|split: 0|first|last|join|length|flatten|values|keys)| == | != | < | && | \\|\\| | \\? 'a' : |'[a-c]'|[0-9]{1,20}|\\{\\{[a-c]\\}\\}){1,8}",
            current in json_value(),
            vars in json_value(),
        ) {
            if let Ok(expr) = parse(&src) {
                let _ = expr.eval(&Scope { current: &current, vars: &vars });
            }
        }
    }
}
