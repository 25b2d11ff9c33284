//! The appservice's user namespace: the bot's user id and the puppets'
//! user ids derived from the configured localpart template (`instagram_{id}`).

use ruma::{OwnedUserId, UserId};

use crate::config::Config;

/// Why the configured namespace cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("invalid bot user id @{localpart}:{domain}: {reason}")]
    Bot {
        localpart: String,
        domain: String,
        reason: String,
    },
    #[error("puppet localpart template {template:?} must contain {{id}} exactly once")]
    Template { template: String },
}

/// Which Matrix users belong to the bridge.
#[derive(Debug, Clone)]
pub struct UserNamespace {
    bot: OwnedUserId,
    domain: String,
    puppet_prefix: String,
    puppet_suffix: String,
}

impl UserNamespace {
    pub fn from_config(config: &Config) -> Result<UserNamespace, NamespaceError> {
        let domain = config.homeserver.domain.clone();
        let localpart = &config.bot.localpart;
        let bot =
            UserId::parse(format!("@{localpart}:{domain}")).map_err(|e| NamespaceError::Bot {
                localpart: localpart.clone(),
                domain: domain.clone(),
                reason: e.to_string(),
            })?;
        let template = &config.puppets.localpart_template;
        let (prefix, suffix) = match template.split_once("{id}") {
            Some((prefix, suffix)) if !suffix.contains("{id}") => (prefix, suffix),
            _ => {
                return Err(NamespaceError::Template {
                    template: template.clone(),
                })
            }
        };
        Ok(UserNamespace {
            bot,
            domain,
            puppet_prefix: prefix.to_owned(),
            puppet_suffix: suffix.to_owned(),
        })
    }

    /// The bot's user id (`@instagrambot:domain`).
    pub fn bot(&self) -> &UserId {
        &self.bot
    }

    /// The puppet user id for an Instagram user id.
    pub fn puppet(&self, ig_user_id: &str) -> Option<OwnedUserId> {
        UserId::parse(format!(
            "@{}{}{}:{}",
            self.puppet_prefix, ig_user_id, self.puppet_suffix, self.domain
        ))
        .ok()
    }

    /// The Instagram user id a puppet user id stands for.
    pub fn puppet_ig_id<'a>(&self, user_id: &'a str) -> Option<&'a str> {
        let localpart = user_id
            .strip_prefix('@')?
            .strip_suffix(self.domain.as_str())?
            .strip_suffix(':')?;
        let id = localpart
            .strip_prefix(self.puppet_prefix.as_str())?
            .strip_suffix(self.puppet_suffix.as_str())?;
        (!id.is_empty()).then_some(id)
    }

    pub fn is_puppet(&self, user_id: &str) -> bool {
        self.puppet_ig_id(user_id).is_some()
    }

    pub fn is_bot(&self, user_id: &str) -> bool {
        self.bot.as_str() == user_id
    }

    /// Whether the bridge owns this user id (the bot or a puppet).
    pub fn owns(&self, user_id: &str) -> bool {
        self.is_bot(user_id) || self.is_puppet(user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(prefix: &str, suffix: &str) -> UserNamespace {
        UserNamespace {
            bot: UserId::parse("@instagrambot:example.org").unwrap(),
            domain: "example.org".to_owned(),
            puppet_prefix: prefix.to_owned(),
            puppet_suffix: suffix.to_owned(),
        }
    }

    #[test]
    fn puppet_ids_round_trip() {
        let ns = namespace("instagram_", "");
        let puppet = ns.puppet("17841400000").unwrap();
        assert_eq!(puppet.as_str(), "@instagram_17841400000:example.org");
        assert_eq!(ns.puppet_ig_id(puppet.as_str()), Some("17841400000"));
        assert!(ns.is_puppet(puppet.as_str()));
    }

    #[test]
    fn template_with_suffix_is_honoured() {
        let ns = namespace("ig.", "_bridge");
        assert_eq!(ns.puppet_ig_id("@ig.42_bridge:example.org"), Some("42"));
        assert_eq!(ns.puppet_ig_id("@ig.42:example.org"), None);
    }

    #[test]
    fn strangers_and_other_servers_are_not_owned() {
        let ns = namespace("instagram_", "");
        assert!(ns.owns("@instagrambot:example.org"));
        assert!(!ns.owns("@alice:example.org"));
        assert!(!ns.owns("@instagram_1:evil.example"));
        assert!(!ns.owns("@instagram_:example.org"));
        assert!(!ns.owns("@instagram_1:example.org.evil"));
    }
}
