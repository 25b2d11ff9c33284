//! Which Matrix events are changes: `m.replace` edits, `m.reaction`,
//! `m.room.redaction`, `m.room.name`, and invites of puppets.

use ruma::events::room::member::MembershipState;
use ruma::events::room::message::Relation;
use ruma::events::{
    AnyMessageLikeEvent, AnyStateEvent, AnyTimelineEvent, MessageLikeEvent, StateEvent,
};

use super::Change;
use crate::bridge::Bridge;
use crate::config::Config;

/// The change `event` asks for, or `None` when it is not one (a new message,
/// the user's own membership, an invite of someone who is not a puppet).
pub fn classify(bridge: &Bridge, event: &AnyTimelineEvent) -> Option<Change> {
    classify_event(&bridge.config, event)
}

fn classify_event(config: &Config, event: &AnyTimelineEvent) -> Option<Change> {
    match event {
        AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::RoomMessage(
            MessageLikeEvent::Original(message),
        )) => match &message.content.relates_to {
            Some(Relation::Replacement(replacement)) => Some(Change::Edit {
                target_event: replacement.event_id.to_string(),
                text: replacement.new_content.msgtype.body().to_owned(),
            }),
            _ => None,
        },
        AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::Reaction(
            MessageLikeEvent::Original(reaction),
        )) => Some(Change::React {
            target_event: reaction.content.relates_to.event_id.to_string(),
            key: reaction.content.relates_to.key.clone(),
            reaction_event: reaction.event_id.to_string(),
        }),
        AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::RoomRedaction(redaction)) => {
            let redaction = redaction.as_original()?;
            // Room versions before 11 name the target outside the content.
            let target = redaction
                .content
                .redacts
                .as_ref()
                .or(redaction.redacts.as_ref())?;
            Some(Change::Redact {
                target_event: target.to_string(),
            })
        }
        AnyTimelineEvent::State(AnyStateEvent::RoomName(StateEvent::Original(name))) => {
            Some(Change::Rename {
                title: name.content.name.clone(),
            })
        }
        AnyTimelineEvent::State(AnyStateEvent::RoomMember(StateEvent::Original(member))) => {
            if member.content.membership != MembershipState::Invite
                || member.state_key == member.sender
            {
                return None;
            }
            let ig_user_id = config.puppet_ig_id(member.state_key.as_str())?;
            Some(Change::Invite {
                user_mxid: member.state_key.to_string(),
                ig_user_id: ig_user_id.to_owned(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn config() -> Config {
        let mut config = Config::example();
        config.homeserver.domain = "example.org".to_owned();
        config.puppets.localpart_template = "instagram_{id}".to_owned();
        config
    }

    fn event(kind: &str, content: Value, state_key: Option<&str>) -> AnyTimelineEvent {
        let mut event = json!({
            "type": kind,
            "event_id": "$event",
            "room_id": "!portal:example.org",
            "sender": "@alice:example.org",
            "origin_server_ts": 1,
            "content": content,
        });
        if let Some(state_key) = state_key {
            event["state_key"] = json!(state_key);
        }
        serde_json::from_value(event).unwrap()
    }

    fn classified(kind: &str, content: Value, state_key: Option<&str>) -> Option<Change> {
        classify_event(&config(), &event(kind, content, state_key))
    }

    #[test]
    fn an_edit_carries_the_new_plain_text() {
        let edit = json!({
            "msgtype": "m.text",
            "body": "* see you at 8",
            "m.new_content": {
                "msgtype": "m.text",
                "body": "see you at **8**",
                "format": "org.matrix.custom.html",
                "formatted_body": "see you at <b>8</b>",
            },
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$original"},
        });
        assert_eq!(
            classified("m.room.message", edit, None),
            Some(Change::Edit {
                target_event: "$original".to_owned(),
                text: "see you at **8**".to_owned(),
            })
        );
    }

    #[test]
    fn new_messages_and_replies_are_not_changes() {
        let text = json!({"msgtype": "m.text", "body": "hello"});
        assert_eq!(classified("m.room.message", text, None), None);
        let reply = json!({
            "msgtype": "m.text",
            "body": "yes",
            "m.relates_to": {"m.in_reply_to": {"event_id": "$question"}},
        });
        assert_eq!(classified("m.room.message", reply, None), None);
    }

    #[test]
    fn a_reaction_carries_its_key_and_its_own_event() {
        let reaction = json!({"m.relates_to": {
            "rel_type": "m.annotation", "event_id": "$message", "key": "❤️",
        }});
        assert_eq!(
            classified("m.reaction", reaction, None),
            Some(Change::React {
                target_event: "$message".to_owned(),
                key: "❤️".to_owned(),
                reaction_event: "$event".to_owned(),
            })
        );
    }

    #[test]
    fn a_redaction_names_its_target_in_any_room_version() {
        let v11 = classified("m.room.redaction", json!({"redacts": "$gone"}), None);
        let expected = Some(Change::Redact {
            target_event: "$gone".to_owned(),
        });
        assert_eq!(v11, expected);
        let mut old = json!({
            "type": "m.room.redaction",
            "event_id": "$event",
            "room_id": "!portal:example.org",
            "sender": "@alice:example.org",
            "origin_server_ts": 1,
            "redacts": "$gone",
            "content": {"reason": "typo"},
        });
        let before_v11: AnyTimelineEvent = serde_json::from_value(old.take()).unwrap();
        assert_eq!(classify_event(&config(), &before_v11), expected);
    }

    #[test]
    fn a_new_room_name_is_a_rename() {
        let name = json!({"name": "Weekend plans"});
        assert_eq!(
            classified("m.room.name", name, Some("")),
            Some(Change::Rename {
                title: "Weekend plans".to_owned()
            })
        );
    }

    #[test]
    fn inviting_a_puppet_adds_its_instagram_user() {
        let invite = json!({"membership": "invite"});
        assert_eq!(
            classified(
                "m.room.member",
                invite,
                Some("@instagram_17841400001:example.org")
            ),
            Some(Change::Invite {
                user_mxid: "@instagram_17841400001:example.org".to_owned(),
                ig_user_id: "17841400001".to_owned(),
            })
        );
    }

    #[test]
    fn other_memberships_are_not_changes() {
        let invite = || json!({"membership": "invite"});
        assert_eq!(
            classified("m.room.member", invite(), Some("@bob:example.org")),
            None,
            "inviting someone who is not a puppet"
        );
        assert_eq!(
            classified(
                "m.room.member",
                invite(),
                Some("@instagram_1:elsewhere.example")
            ),
            None,
            "a puppet-like user of another server"
        );
        assert_eq!(
            classified(
                "m.room.member",
                json!({"membership": "leave"}),
                Some("@alice:example.org")
            ),
            None,
            "the user leaving"
        );
        assert_eq!(
            classified(
                "m.room.member",
                json!({"membership": "join"}),
                Some("@alice:example.org")
            ),
            None,
            "the user joining"
        );
        assert_eq!(
            classified(
                "m.room.member",
                json!({"membership": "ban"}),
                Some("@instagram_17841400001:example.org")
            ),
            None,
            "banning a puppet"
        );
    }

    #[test]
    fn other_state_is_not_a_change() {
        let topic = json!({"topic": "plans"});
        assert_eq!(classified("m.room.topic", topic, Some("")), None);
    }
}
