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
    /// A list of templates (usually one object): each builds a list, one
    /// object per element, and the lists are joined in order.
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
    /// `context:` by name, with its field path (`context.viewer_id`).
    context: Vec<(String, String, Expr)>,
    mapping: Option<CompiledNode>,
    /// The mapping uses the `[]` element marker: apply it to each value of an
    /// object root too (e.g. `user_presence`, an object keyed by user id).
    per_element: bool,
}

/// Which part of a `response:` section an expression belongs to: names are
/// resolved differently in each (see [`ResponseMapping::expressions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExprRole {
    /// `context:`: evaluated on the whole body, before the context exists.
    Context,
    /// `root:`: on the whole body, with the context.
    Root,
    /// `mapping:`: on the rooted value; bare names are vars and the context only.
    Mapping,
}

/// One expression of a compiled `response:` section, with its dotted field path.
#[derive(Debug, Clone, Copy)]
pub struct MappedExpr<'a> {
    pub field: &'a str,
    pub expr: &'a Expr,
    pub role: ExprRole,
}

/// A `mapping:` node with its expressions parsed; `path` is its dotted field path.
#[derive(Debug, Clone)]
enum CompiledNode {
    Expr {
        path: String,
        expr: Expr,
    },
    /// Templates whose lists are joined in order.
    List(Vec<CompiledNode>),
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
                if items.is_empty() {
                    errors.push(MappingError {
                        field: path,
                        message:
                            "a list node holds at least one template (an object or an expression)"
                                .to_owned(),
                    });
                    return None;
                }
                let templates: Vec<CompiledNode> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(index, item)| {
                        Self::compile(item, format!("{path}[{index}]"), errors)
                    })
                    .collect();
                (templates.len() == items.len()).then_some(CompiledNode::List(templates))
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

    fn collect_exprs<'a>(&'a self, out: &mut Vec<MappedExpr<'a>>) {
        match self {
            CompiledNode::Expr { path, expr } => out.push(MappedExpr {
                field: path,
                expr,
                role: ExprRole::Mapping,
            }),
            CompiledNode::List(templates) => {
                for template in templates {
                    template.collect_exprs(out);
                }
            }
            CompiledNode::Object(fields) => {
                for (_, node) in fields {
                    node.collect_exprs(out);
                }
            }
        }
    }

    fn uses_element_marker(&self) -> bool {
        match self {
            CompiledNode::Expr { expr, .. } => expr.uses_element_marker(),
            CompiledNode::List(templates) => {
                templates.iter().any(CompiledNode::uses_element_marker)
            }
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
            CompiledNode::List(templates) => {
                let mut list = Vec::new();
                for template in templates {
                    match template {
                        CompiledNode::Expr { .. } => match template.apply(env)? {
                            Value::Null => {}
                            Value::Array(items) => list.extend(items),
                            single => list.push(single),
                        },
                        template => {
                            let columns = Columns::evaluate(template, env)?;
                            list.extend((0..columns.rows()).map(|row| columns.row(row)));
                        }
                    }
                }
                Ok(Value::Array(list))
            }
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
        let context: Vec<(String, String, Expr)> = spec
            .context
            .iter()
            .filter_map(|(name, source)| {
                let field = format!("context.{name}");
                parse(field.clone(), source).map(|expr| (name.clone(), field, expr))
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

    /// The names `context:` defines (`context.<name>` for `root:` and `mapping:`).
    pub fn context_names(&self) -> impl Iterator<Item = &str> {
        self.context.iter().map(|(name, _, _)| name.as_str())
    }

    /// Every expression of the section with its field path and role, in order:
    /// `context:`, `root:`, then `mapping:`.
    pub fn expressions(&self) -> Vec<MappedExpr<'_>> {
        let mut out: Vec<MappedExpr<'_>> = self
            .context
            .iter()
            .map(|(_, field, expr)| MappedExpr {
                field,
                expr,
                role: ExprRole::Context,
            })
            .collect();
        if let Some(root) = &self.root {
            out.push(MappedExpr {
                field: "root",
                expr: root,
                role: ExprRole::Root,
            });
        }
        if let Some(mapping) = &self.mapping {
            mapping.collect_exprs(&mut out);
        }
        out
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
            for (name, field, expr) in &self.context {
                let value = expr
                    .eval_in(&whole)
                    .map_err(|err| field_error(field, err))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::expr::instagram_fixture;
    use crate::model::{Conversation, ConversationKind};
    use serde_json::json;

    fn compile(yaml: &str) -> ResponseMapping {
        let spec: ResponseSpec = serde_norway::from_str(yaml).unwrap();
        ResponseMapping::compile(&spec).unwrap_or_else(|errors| panic!("{errors:?}"))
    }

    fn apply(yaml: &str, fixture: &str, vars: &Value) -> Value {
        compile(yaml)
            .apply(&instagram_fixture(fixture), vars)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    // The `response:` sections below are copied from the seed spec.
    const LIST_CONVERSATIONS: &str = r#"
root: "inbox.threads"
mapping:
  id: "[].thread_id"
  type: "[].thread_type == 'private' ? 'direct' : 'group'"
  name: "[].thread_title"
  participants:
    - id: "[].users[].pk"
      name: "[].users[].full_name"
      handle: "[].users[].username"
  unread_count: "[].read_state"
  updated_at: "[].last_activity_at | divide: 1000000 | to_datetime"
  platform: "'instagram'"
  connector: "'instagram'"
"#;

    const GET_CONVERSATION: &str = r#"
root: "thread"
mapping:
  id: ".thread_id"
  type: ".thread_type == 'private' ? 'direct' : 'group'"
  name: ".thread_title"
  participants:
    - id: ".users[].pk"
      name: ".users[].full_name"
      handle: ".users[].username"
  updated_at: ".last_activity_at | divide: 1000000 | to_datetime"
  platform: "'instagram'"
  connector: "'instagram'"
"#;

    const LIST: &str = r#"
root: "thread.items"
context:
  viewer_id: "thread.viewer_id"
mapping:
  id: "[].item_id"
  conversation_id: "'{{params.conversation_id}}'"
  content: "[].text"
  content_type: "'text'"
  sender:
    id: "[].user_id"
    type: "'user'"
    is_self: "[].user_id == {{context.viewer_id}}"
  is_outgoing: "[].user_id == {{context.viewer_id}}"
  timestamp: "[].timestamp | divide: 1000000 | to_datetime"
  reactions: "[].reactions.emojis"
  reply_to:
    message_id: "[].replied_to_message.item_id"
    preview: "[].replied_to_message.text"
  attachments: "[].media | to_attachment"
  connector: "'instagram'"
"#;

    const GET: &str = r#"
root: "thread.items[?item_id=='{{params.message_id}}'] | [0]"
mapping:
  id: ".item_id"
  conversation_id: "'{{params.conversation_id}}'"
  content: ".text"
  content_type: "'text'"
  sender:
    id: ".user_id"
    type: "'user'"
  timestamp: ".timestamp | divide: 1000000 | to_datetime"
  reactions: ".reactions.emojis"
  connector: "'instagram'"
"#;

    const SEARCH: &str = r#"
root: "message_search_results.message_search_result_items"
mapping:
  id: "[].matched_message_info.item_info.item_id"
  conversation_id: "[].thread.thread_id"
  content: "[].matched_message_info.item_info.text"
  content_type: "'text'"
  timestamp: "[].matched_message_info.item_info.timestamp | divide: 1000000 | to_datetime"
  connector: "'instagram'"
"#;

    const GET_UNREAD: &str = r#"
root: "inbox.threads[*].items[0]"
mapping:
  id: "[].item_id"
  conversation_id: "[].thread_id"
  content: "[].text"
  is_read: "false"
  timestamp: "[].timestamp | divide: 1000000 | to_datetime"
  connector: "'instagram'"
"#;

    const GET_PRESENCE: &str = r#"
root: "user_presence"
mapping:
  user_id: "[].user_id"
  is_active: "[].is_active"
  last_active_at: "[].last_activity_at_ms | divide: 1000 | to_datetime"
"#;

    const SEND: &str = r#"
root: "payload"
mapping:
  id: ".item_id"
  conversation_id: "'{{params.conversation_id}}'"
  content: "'{{params.text}}'"
  content_type: "'text'"
  is_outgoing: "true"
  timestamp: ".timestamp | divide: 1000000 | to_datetime"
  connector: "'instagram'"
"#;

    const VALIDATE: &str = r#"
root: "user"
mapping:
  user_id: ".pk"
  username: ".username"
"#;

    const STATUS_OK: &str = r#"
mapping:
  success: ".status == 'ok'"
"#;

    const GROUP: &str = "340282366841710301244276120666290001122";
    const DM: &str = "340282366841710300949128137443944319108";

    #[test]
    fn list_conversations_maps_the_inbox() {
        let conversations = apply(LIST_CONVERSATIONS, "inbox.json", &json!({}));
        let conversations = conversations.as_array().unwrap();
        assert_eq!(conversations.len(), 2);
        let group = &conversations[0];
        assert_eq!(group["id"], GROUP);
        assert_eq!(group["name"], "Weekend plans");
        assert_eq!(group["unread_count"], 1);
        assert_eq!(group["updated_at"], "2025-06-01T12:12:10.159Z");
        assert_eq!(group["platform"], "instagram");
        assert_eq!(group["connector"], "instagram");
        assert_eq!(
            group["participants"],
            json!([
                {"id": 17841400000000002u64, "name": "Alice W", "handle": "alice.wonder"},
                {"id": 17841400000000003u64, "name": "Bob B", "handle": "bob_builder"},
                {"id": 17841400000000004u64, "name": "Carol S", "handle": "carol.singer"},
            ])
        );
        // Instagram sends `thread_type: private` for groups too, so the seed's ternary
        // calls every thread direct.
        assert_eq!(group["type"], "direct");
        let dm = &conversations[1];
        assert_eq!(dm["id"], DM);
        assert_eq!(dm["type"], "direct");
        assert_eq!(dm["unread_count"], 0);
        assert_eq!(dm["updated_at"], "2025-06-01T11:03:20.069Z");
        assert_eq!(
            dm["participants"],
            json!([{"id": 17841400000000002u64, "name": "Alice W", "handle": "alice.wonder"}])
        );
    }

    #[test]
    fn an_amended_list_conversations_yields_model_conversations() {
        let amended = LIST_CONVERSATIONS
            .replace(
                "[].thread_type == 'private' ? 'direct' : 'group'",
                "[].is_group ? 'group' : 'direct'",
            )
            .replace("[].users[].pk", "[].users[].pk | to_string");
        let mapped = apply(&amended, "inbox.json", &json!({}));
        let conversations: Vec<Conversation> = serde_json::from_value(mapped).unwrap();
        assert_eq!(conversations[0].kind, ConversationKind::Group);
        assert_eq!(conversations[1].kind, ConversationKind::Direct);
        assert_eq!(conversations[0].participants[2].id, "17841400000000004");
        assert_eq!(
            conversations[1].updated_at.map(|at| at.timestamp_millis()),
            Some(1748775800069)
        );
    }

    #[test]
    fn get_conversation_maps_one_thread() {
        let conversation = apply(GET_CONVERSATION, "thread_group_page1.json", &json!({}));
        assert_eq!(conversation["id"], GROUP);
        assert_eq!(conversation["name"], "Weekend plans");
        assert_eq!(conversation["updated_at"], "2025-06-01T12:12:10.159Z");
        assert_eq!(
            conversation["participants"][1],
            json!({"id": 17841400000000003u64, "name": "Bob B", "handle": "bob_builder"})
        );
        assert_eq!(
            conversation["participants"].as_array().map(Vec::len),
            Some(3)
        );
    }

    #[test]
    fn list_maps_messages_with_context_replies_reactions_and_attachments() {
        let vars = json!({"params": {"conversation_id": GROUP}});
        let page1 = apply(LIST, "thread_group_page1.json", &vars);
        let page1 = page1.as_array().unwrap();
        assert_eq!(page1.len(), 12);
        let newest = &page1[0];
        assert_eq!(newest["id"], "32259295812882884397032275263356928");
        assert_eq!(newest["conversation_id"], GROUP);
        assert_eq!(newest["timestamp"], "2025-06-01T12:12:10.159008Z");
        assert_eq!(
            newest["sender"],
            json!({"id": 17841400000000004u64, "type": "user", "is_self": false})
        );
        assert_eq!(newest["is_outgoing"], false);
        assert_eq!(
            newest["reply_to"],
            json!({"message_id": null, "preview": null})
        );
        assert_eq!(newest["attachments"], json!([]));

        let page2 = apply(LIST, "thread_group_page2_older.json", &vars);
        let by_id = |id: &str| {
            page2
                .as_array()
                .unwrap()
                .iter()
                .find(|message| message["id"] == id)
                .unwrap_or_else(|| panic!("no message {id}"))
                .clone()
        };
        let reply = by_id("32259284190860276645369800451686400");
        assert_eq!(reply["content"], "yes, still on 👍");
        assert_eq!(reply["sender"]["is_self"], true);
        assert_eq!(reply["is_outgoing"], true);
        assert_eq!(reply["timestamp"], "2025-06-01T12:01:40.127900Z");
        assert_eq!(
            reply["reply_to"],
            json!({
                "message_id": "32259282530591827013512481076150272",
                "preview": "hey! are we still on for saturday?"
            })
        );
        let reacted = by_id("32259283637437460101417360659841024");
        let emojis: Vec<&str> = reacted["reactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|reaction| reaction["emoji"].as_str().unwrap())
            .collect();
        assert_eq!(emojis, ["😂", "❤️"]);
        assert_eq!(reacted["reactions"][0]["sender_id"], 17841400000000001u64);
        let photo = by_id("32259285851128726277227119827222528");
        assert_eq!(photo["attachments"][0]["type"], "image");
        let video = by_id("32259286404551542821179559619067904");
        assert_eq!(video["attachments"][0]["type"], "video");
        // `to_attachment` normalizes media objects only: which key holds them
        // is the mapping's choice, so a voice note's audio is not under `media`.
        let voice = by_id("32259286957974359365131999410913280");
        assert_eq!(voice["attachments"], json!([]));
        let voice_too = LIST.replace(
            "[].media | to_attachment",
            "[].voice_media.media | to_attachment",
        );
        let mapped = apply(&voice_too, "thread_group_page2_older.json", &vars);
        let kinds: Vec<Value> = mapped
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|message| message["attachments"].get(0).map(|a| a["type"].clone()))
            .collect();
        assert_eq!(kinds, [json!("audio")]);
    }

    #[test]
    fn get_finds_one_message_or_null() {
        let vars = json!({"params": {
            "conversation_id": GROUP,
            "message_id": "32259283637437460101417360659841024",
        }});
        let message = apply(GET, "thread_group_page2_older.json", &vars);
        assert_eq!(message["id"], "32259283637437460101417360659841024");
        assert_eq!(message["content"], "perfect, see you there 🎉");
        assert_eq!(message["conversation_id"], GROUP);
        assert_eq!(
            message["sender"],
            json!({"id": 17841400000000002u64, "type": "user"})
        );
        assert_eq!(message["timestamp"], "2025-06-01T12:01:10.126789Z");
        assert_eq!(message["reactions"][1]["emoji"], "❤️");

        let vars = json!({"params": {"conversation_id": GROUP, "message_id": "gone"}});
        assert_eq!(
            apply(GET, "thread_group_page2_older.json", &vars),
            Value::Null
        );
    }

    #[test]
    fn search_maps_matches() {
        let results = apply(SEARCH, "search_secondary.json", &json!({}));
        assert_eq!(
            results[0],
            json!({
                "id": "32259215936833326713777819704360960",
                "conversation_id": DM,
                "content": "want to grab coffee before I leave?",
                "content_type": "text",
                "timestamp": "2025-06-01T11:00:00.069685Z",
                "connector": "instagram",
            })
        );
    }

    #[test]
    fn get_unread_takes_each_threads_newest_item() {
        let unread = apply(GET_UNREAD, "inbox.json", &json!({}));
        let unread = unread.as_array().unwrap();
        assert_eq!(unread.len(), 2);
        assert_eq!(unread[1]["id"], "32259219626183506514749597411180544");
        assert_eq!(unread[1]["content"], "friday works ☕");
        assert_eq!(unread[1]["is_read"], false);
        assert_eq!(unread[0]["timestamp"], "2025-06-01T12:12:10.159008Z");
    }

    #[test]
    fn get_presence_maps_an_object_keyed_by_user_id() {
        let presence = apply(
            GET_PRESENCE,
            "fetch_and_subscribe_presence.json",
            &json!({}),
        );
        assert_eq!(
            presence,
            json!([
                {"user_id": "17841400000000002", "is_active": true, "last_active_at": "2025-06-01T12:19:50Z"},
                {"user_id": "17841400000000003", "is_active": false, "last_active_at": "2025-06-01T10:30:00Z"},
            ])
        );
    }

    #[test]
    fn send_echoes_params_exactly_even_with_quotes() {
        let text = "it's {{not}} a 'template' \\ at all";
        let vars = json!({"params": {"conversation_id": DM, "text": text}});
        let sent = apply(SEND, "broadcast_text.json", &vars);
        assert_eq!(sent["id"], "32259300800808565824591678056431616");
        assert_eq!(sent["content"], text);
        assert_eq!(sent["conversation_id"], DM);
        assert_eq!(sent["is_outgoing"], true);
        assert_eq!(sent["timestamp"], "2025-06-01T12:16:40.555001Z");
    }

    #[test]
    fn status_mappings_and_validate() {
        let ok = apply(STATUS_OK, "thread_mute.json", &json!({}));
        assert_eq!(ok, json!({"success": true}));
        let failed = compile(STATUS_OK)
            .apply(&json!({"status": "fail", "message": "nope"}), &json!({}))
            .unwrap();
        assert_eq!(failed, json!({"success": false}));
        let user = apply(VALIDATE, "current_user.json", &json!({}));
        assert_eq!(
            user,
            json!({"user_id": 17841400000000001u64, "username": "bridge.tester"})
        );
    }

    #[test]
    fn without_mapping_the_rooted_body_is_returned() {
        let body = instagram_fixture("inbox.json");
        let whole = compile("{}").apply(&body, &json!({})).unwrap();
        assert_eq!(whole, body);
        let cursor = compile("root: inbox.oldest_cursor")
            .apply(&body, &json!({}))
            .unwrap();
        assert_eq!(cursor, body["inbox"]["oldest_cursor"]);
    }

    #[test]
    fn vars_shadow_body_keys_and_context_sees_the_whole_body() {
        let body = json!({"params": "from the body", "status": "ok", "thread": {"viewer_id": 7}});
        let mapping = compile(
            r#"
context:
  viewer: "thread.viewer_id"
root: "params"
mapping:
  root_was: "@"
  viewer: "{{context.viewer}}"
  status: "status"
"#,
        );
        let mapped = mapping.apply(&body, &json!({"params": {"x": 1}})).unwrap();
        // `status` is a body key: visible to root:/context: only, not to mapping fields.
        assert_eq!(
            mapped,
            json!({"root_was": {"x": 1}, "viewer": 7, "status": null})
        );
    }

    #[test]
    fn compile_reports_every_problem_with_its_field_path() {
        let spec: ResponseSpec = serde_norway::from_str(
            r#"
root: "inbox.threads[?"
context:
  viewer_id: "thread.viewer_id =="
  fine: "thread.viewer_id"
mapping:
  id: "[].thread_id"
  sender:
    id: "[].user_id | nope"
  participants:
    - id: "[].users[].pk ? 1"
      name: "[].users[].full_name"
  pair: []
  text: "'unterminated"
"#,
        )
        .unwrap();
        let errors = ResponseMapping::compile(&spec).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|err| err.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "root",
                "context.viewer_id",
                "mapping.sender.id",
                "mapping.participants[0].id",
                "mapping.pair",
                "mapping.text"
            ]
        );
        assert_eq!(
            errors[0].to_string(),
            "root: expected a value, found the end of the input at column 16 in `inbox.threads[?`"
        );
        assert!(
            errors[2].message.contains("unknown filter `nope`"),
            "{}",
            errors[2]
        );
        assert!(errors[2].message.contains("column 14"), "{}", errors[2]);
        assert_eq!(
            errors[3].to_string(),
            "mapping.participants[0].id: expected `:` to complete the conditional `?` at column 15, \
             found the end of the input at column 18 in `[].users[].pk ? 1`"
        );
        assert!(
            errors[4].message.contains("at least one template"),
            "{}",
            errors[4]
        );
        assert_eq!(
            errors[5].message,
            "unterminated string (missing closing `'`) at column 1 in `'unterminated`"
        );
    }

    #[test]
    fn a_list_of_several_templates_joins_their_rows() {
        let mapping = compile(
            r#"
mapping:
  reactions:
    - emoji: ".reactions.emojis[].emoji"
      sender_id: ".reactions.emojis[].sender_id | to_string"
    - emoji: "'❤️'"
      sender_id: ".reactions.likes[].sender_id | to_string"
    - ".extra"
"#,
        );
        let item = instagram_fixture("items/text_with_reactions.json");
        assert_eq!(
            mapping.apply(&item, &json!({})).unwrap()["reactions"],
            json!([
                {"emoji": "😂", "sender_id": "17841400000000001"},
                {"emoji": "❤️", "sender_id": "17841400000000003"},
                {"emoji": "❤️", "sender_id": "17841400000000003"},
            ])
        );
        // A template with nothing to list adds no rows, even with a constant column.
        assert_eq!(
            mapping.apply(&json!({"extra": 7}), &json!({})).unwrap()["reactions"],
            json!([7])
        );
    }

    #[test]
    fn runtime_errors_name_the_field() {
        let mapping = compile("mapping:\n  when: \".timestamp | to_datetime\"\n");
        let err = mapping
            .apply(&json!({"timestamp": "yesterday"}), &json!({}))
            .unwrap_err();
        assert!(
            err.message.starts_with("mapping.when: to_datetime"),
            "{err}"
        );
        assert_eq!(err.source_text, ".timestamp | to_datetime");
    }

    #[test]
    fn list_node_of_an_expression_and_of_constants() {
        let mapping = compile(
            r#"
mapping:
  ids:
    - ".users[].pk"
  none:
    - ".missing[].pk"
  tags:
    - kind: "'user'"
      id: ".users[].pk"
  empty:
    - kind: "'user'"
"#,
        );
        let mapped = mapping
            .apply(&json!({"users": [{"pk": 1}, {"pk": 2}]}), &json!({}))
            .unwrap();
        assert_eq!(
            mapped,
            json!({
                "ids": [1, 2],
                "none": [],
                "tags": [{"kind": "user", "id": 1}, {"kind": "user", "id": 2}],
                "empty": [],
            })
        );
    }
}
