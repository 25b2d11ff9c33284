//! Drift mode: the simulator answers the way a newer or older Instagram might. Timestamps
//! and pks come as strings, optional keys are missing, and items of a kind no client knows
//! appear among the others.

use serde_json::{json, Value};

use crate::world::ItemKind;

/// Numbers that some Instagram versions send as strings.
const STRINGIFIED: &[&str] = &[
    "timestamp",
    "user_id",
    "pk",
    "sender_id",
    "viewer_id",
    "last_activity_at",
    "last_non_sender_item_at",
];

/// Keys that come and go between versions (mautrix broke on several of them).
const DROPPED: &[&str] = &[
    "is_sent_by_viewer",
    "send_attribution",
    "uq_seq_id",
    "otid",
    "message_id",
    "inviter",
    "pk_id",
    "strong_id__",
    "fbid_v2",
    "interop_messaging_user_fbid",
    "profile_pic_id",
    "last_permanent_item",
    "show_forward_attribution",
    "is_shh_mode",
    "hide_in_thread",
    "snippet",
];

/// The kind of the items drift mode adds; no client knows it.
pub const UNKNOWN_KIND: &str = "sim_future_card";

/// The unknown item drift mode adds after each item posted while it is on.
pub fn unknown_item() -> ItemKind {
    json!({
        "item_type": UNKNOWN_KIND,
        UNKNOWN_KIND: {"title": "Something new", "fallback_text": "Update Instagram to see this message.", "card_version": 3},
    })
}

/// Rewrites a response body the drifted way.
pub fn apply(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(apply),
        Value::Object(map) => {
            for key in DROPPED {
                map.shift_remove(*key);
            }
            for (key, item) in map.iter_mut() {
                if STRINGIFIED.contains(&key.as_str()) {
                    if let Value::Number(number) = item {
                        *item = Value::String(number.to_string());
                        continue;
                    }
                }
                apply(item);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_strings_and_optional_keys_go() {
        let mut body = json!({"items": [{"timestamp": 17, "user_id": 5, "otid": "x", "text": "hi"}], "users": [{"pk": 5, "pk_id": "5"}]});
        apply(&mut body);
        assert_eq!(
            body,
            json!({"items": [{"timestamp": "17", "user_id": "5", "text": "hi"}], "users": [{"pk": "5"}]})
        );
    }
}
