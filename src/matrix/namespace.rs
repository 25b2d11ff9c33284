//! The appservice's user namespace: the bot's user id and the puppets' user
//! ids. The mapping itself lives in the configuration (`Config::puppet_mxid`,
//! `Config::puppet_ig_id`); this adds parsed user ids for the Matrix side.

use std::sync::Arc;

use ruma::{OwnedUserId, UserId};

use crate::config::Config;

/// The configured bot user id is not a valid Matrix user id.
#[derive(Debug, thiserror::Error)]
#[error("invalid bot user id {user_id}: {reason}")]
pub struct NamespaceError {
    pub user_id: String,
    pub reason: String,
}

/// Which Matrix users belong to the bridge.
#[derive(Debug, Clone)]
pub struct UserNamespace {
    bot: OwnedUserId,
    config: Arc<Config>,
}

impl UserNamespace {
    pub fn from_config(config: Arc<Config>) -> Result<UserNamespace, NamespaceError> {
        let user_id = config.bot_mxid();
        let bot = UserId::parse(&user_id).map_err(|e| NamespaceError {
            user_id,
            reason: e.to_string(),
        })?;
        Ok(UserNamespace { bot, config })
    }

    /// The bot's user id (`@instagrambot:domain`).
    pub fn bot(&self) -> &UserId {
        &self.bot
    }

    /// The puppet user id for an Instagram user id.
    pub fn puppet(&self, ig_user_id: &str) -> Option<OwnedUserId> {
        UserId::parse(self.config.puppet_mxid(ig_user_id)).ok()
    }

    /// Whether the user id is in the puppet namespace (whatever stands for `{id}`).
    pub fn is_puppet(&self, user_id: &str) -> bool {
        self.config.puppet_ig_id(user_id).is_some()
    }

    pub fn is_bot(&self, user_id: &str) -> bool {
        self.bot.as_str() == user_id
    }

    /// Whether the bridge owns this user id (the bot or a puppet).
    pub fn owns(&self, user_id: &str) -> bool {
        self.is_bot(user_id) || self.is_puppet(user_id)
    }

    /// Whether the bridge may create this user on request: the bot, or the
    /// puppet of something that can be an Instagram user id (digits). Other
    /// ids in the namespace are refused, so a homeserver user cannot make the
    /// bridge register arbitrary ghosts by querying invented ids.
    pub fn may_provision(&self, user_id: &str) -> bool {
        self.is_bot(user_id)
            || self
                .config
                .puppet_ig_id(user_id)
                .is_some_and(is_instagram_user_id)
    }
}

/// Instagram user ids (and Graph API scoped ids) are decimal numbers; the
/// length bound keeps puppet user ids well under Matrix's 255-byte limit.
fn is_instagram_user_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(template: &str) -> UserNamespace {
        let mut config = Config::example();
        config.homeserver.domain = "example.org".to_owned();
        config.bot.localpart = "instagrambot".to_owned();
        config.puppets.localpart_template = template.to_owned();
        UserNamespace::from_config(Arc::new(config)).unwrap()
    }

    #[test]
    fn puppet_ids_round_trip() {
        let ns = namespace("instagram_{id}");
        let puppet = ns.puppet("17841400000").unwrap();
        assert_eq!(puppet.as_str(), "@instagram_17841400000:example.org");
        assert!(ns.is_puppet(puppet.as_str()));
        assert_eq!(ns.bot().as_str(), "@instagrambot:example.org");
    }

    #[test]
    fn template_with_suffix_is_honoured() {
        let ns = namespace("ig.{id}_bridge");
        assert!(ns.is_puppet("@ig.42_bridge:example.org"));
        assert!(!ns.is_puppet("@ig.42:example.org"));
    }

    #[test]
    fn strangers_and_other_servers_are_not_owned() {
        let ns = namespace("instagram_{id}");
        assert!(ns.owns("@instagrambot:example.org"));
        assert!(!ns.owns("@alice:example.org"));
        assert!(!ns.owns("@instagram_1:evil.example"));
        assert!(!ns.owns("@instagram_:example.org"));
        assert!(!ns.owns("@instagram_1:example.org.evil"));
    }

    #[test]
    fn only_numeric_puppets_and_the_bot_may_be_provisioned() {
        let ns = namespace("instagram_{id}");
        assert!(ns.may_provision("@instagrambot:example.org"));
        assert!(ns.may_provision("@instagram_17841400000:example.org"));
        assert!(ns.owns("@instagram_admin:example.org"));
        assert!(!ns.may_provision("@instagram_admin:example.org"));
        assert!(!ns.may_provision("@instagram_12a:example.org"));
        assert!(!ns.may_provision(&format!("@instagram_{}:example.org", "9".repeat(33))));
        assert!(!ns.may_provision("@alice:example.org"));
        assert!(!ns.may_provision("@instagram_1:evil.example"));
    }
}
