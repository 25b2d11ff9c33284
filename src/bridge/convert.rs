//! Instagram items to Matrix event contents (pure, no I/O). A minimal
//! version: text (with mention pills and replies); any attachment becomes a
//! notice with its link. The items helper's full converter replaces it.

use std::collections::HashMap;

use ruma::{EventId, OwnedEventId, OwnedUserId};
use serde_json::{json, Map, Value};

use crate::model::Message;

/// A bridged Instagram user a `@username` in a text turns into a pill for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub user_id: OwnedUserId,
    pub displayname: String,
}

/// What a reply points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyTarget {
    Bridged {
        event_id: OwnedEventId,
    },
    Missing {
        sender_name: String,
        preview: Option<String>,
    },
}

/// What a conversion needs to know beyond the item itself.
#[derive(Debug, Clone)]
pub struct ConvertContext<'a> {
    /// Bridged Instagram users by lowercase username (for mention pills).
    pub mentions: &'a HashMap<String, Mention>,
    pub reply: Option<ReplyTarget>,
    /// Display name of the sender (for notices such as "X sent a view-once photo").
    pub sender_name: &'a str,
}

/// One Matrix event of a converted item.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Stable id of this part within the item ("" for the main part, "preview", ...):
    /// the Matrix txn id and the message row derive from (item id, part id).
    pub part_id: String,
    /// "m.room.message" or "m.sticker".
    pub event_type: &'static str,
    pub content: Value,
    /// Media to download from Instagram and upload, then filled into `content` by media.rs.
    pub media: Option<MediaSource>,
}

/// Where a part's media comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSource {
    pub url: String,
    pub thumbnail_url: Option<String>,
    pub filename: String,
    pub kind: MediaKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Gif,
    Sticker,
}

/// The Matrix events standing for one Instagram item.
pub fn convert_message(message: &Message, ctx: &ConvertContext<'_>) -> Vec<Part> {
    let mut parts = Vec::new();
    if let Some(text) = message.content.as_deref().filter(|text| !text.is_empty()) {
        parts.push(main_part(text_content(text, ctx)));
    }
    for (index, attachment) in message.attachments.iter().enumerate() {
        let link = attachment.url.as_deref().unwrap_or("(no link)");
        let body = format!("Sent a {}: {link}", attachment.kind);
        let mut part = main_part(json!({"msgtype": "m.notice", "body": body}));
        if !parts.is_empty() || index > 0 {
            part.part_id = format!("attachment-{index}");
        }
        parts.push(part);
    }
    if parts.is_empty() {
        let kind = message.kind.as_deref().unwrap_or("unknown");
        let body = format!("Unsupported Instagram message ({kind}); open Instagram to see it");
        parts.push(main_part(json!({"msgtype": "m.notice", "body": body})));
    }
    if let Some(first) = parts.first_mut() {
        add_reply(&mut first.content, ctx.reply.as_ref());
    }
    parts
}

/// The `m.replace` content for an edited item's main part.
pub fn edit_content(new_main: &Part, target: &EventId) -> Value {
    let mut new_content = new_main.content.clone();
    if let Some(object) = new_content.as_object_mut() {
        object.remove("m.relates_to");
    }
    let body = new_content["body"].as_str().unwrap_or_default();
    json!({
        "msgtype": new_content["msgtype"].clone(),
        "body": format!("* {body}"),
        "m.new_content": new_content,
        "m.relates_to": {"rel_type": "m.replace", "event_id": target.as_str()},
    })
}

fn main_part(content: Value) -> Part {
    Part {
        part_id: String::new(),
        event_type: "m.room.message",
        content,
        media: None,
    }
}

/// `m.text` content; known `@username`s become pills.
fn text_content(text: &str, ctx: &ConvertContext<'_>) -> Value {
    let mut html = String::new();
    let mut mentioned: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let (before, from_at) = rest.split_at(at);
        html.push_str(&escape_html(before));
        let name_len = from_at[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(from_at.len() - 1);
        let name = from_at[1..1 + name_len].trim_end_matches('.');
        match ctx.mentions.get(&name.to_lowercase()) {
            Some(mention) if !name.is_empty() => {
                html.push_str(&format!(
                    "<a href=\"https://matrix.to/#/{}\">{}</a>",
                    mention.user_id,
                    escape_html(&mention.displayname)
                ));
                if !mentioned.contains(&mention.user_id.to_string()) {
                    mentioned.push(mention.user_id.to_string());
                }
                rest = &from_at[1 + name.len()..];
            }
            _ => {
                html.push('@');
                rest = &from_at[1..];
            }
        }
    }
    html.push_str(&escape_html(rest));
    let mut content = Map::new();
    content.insert("msgtype".to_owned(), json!("m.text"));
    content.insert("body".to_owned(), json!(text));
    if !mentioned.is_empty() {
        content.insert("format".to_owned(), json!("org.matrix.custom.html"));
        content.insert("formatted_body".to_owned(), json!(html));
    }
    content.insert("m.mentions".to_owned(), json!({"user_ids": mentioned}));
    Value::Object(content)
}

fn add_reply(content: &mut Value, reply: Option<&ReplyTarget>) {
    match reply {
        Some(ReplyTarget::Bridged { event_id }) => {
            content["m.relates_to"] = json!({"m.in_reply_to": {"event_id": event_id.as_str()}});
        }
        Some(ReplyTarget::Missing {
            sender_name,
            preview,
        }) => {
            let quoted = preview.as_deref().unwrap_or("a message");
            let body = content["body"].as_str().unwrap_or_default();
            content["body"] = json!(format!("> {sender_name}: {quoted}\n\n{body}"));
        }
        None => {}
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> Message {
        serde_json::from_value(json!({"id": "1", "conversation_id": "2", "content": text})).unwrap()
    }

    #[test]
    fn a_known_username_becomes_a_pill() {
        let mentions = HashMap::from([(
            "bob.b".to_owned(),
            Mention {
                user_id: "@instagram_2:example.org".try_into().unwrap(),
                displayname: "Bob (Instagram)".to_owned(),
            },
        )]);
        let ctx = ConvertContext {
            mentions: &mentions,
            reply: None,
            sender_name: "Alice",
        };
        let parts = convert_message(&message("hi @Bob.B and @nobody <3"), &ctx);
        assert_eq!(parts.len(), 1);
        let content = &parts[0].content;
        assert_eq!(content["body"], "hi @Bob.B and @nobody <3");
        assert_eq!(
            content["formatted_body"],
            "hi <a href=\"https://matrix.to/#/@instagram_2:example.org\">Bob (Instagram)</a> and @nobody &lt;3"
        );
        assert_eq!(
            content["m.mentions"]["user_ids"],
            json!(["@instagram_2:example.org"])
        );
    }
}
