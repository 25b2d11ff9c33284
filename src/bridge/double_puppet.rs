//! Double puppeting: acting as the user's own Matrix account, through a
//! second appservice registration (`double_puppet.as_token`) whose `users`
//! namespace covers the homeserver's users, with `?user_id=`.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use ruma::{OwnedUserId, UserId};

use crate::config::Config;
use crate::matrix::client::{ClientError, HomeserverClient};

/// Marks events the bridge sent as a user, so the bridge can ignore them
/// when the homeserver hands them back (as mautrix bridges do).
pub const SOURCE_KEY: &str = "fi.mau.double_puppet_source";

/// The value of [`SOURCE_KEY`] on this bridge's double-puppeted events.
pub const SOURCE: &str = "matrix-instagram";

/// A client that acts as real users of the homeserver.
#[derive(Debug)]
pub struct DoublePuppet {
    client: HomeserverClient,
    /// Users the homeserver has confirmed the token may act as.
    confirmed: Mutex<HashSet<OwnedUserId>>,
}

impl DoublePuppet {
    /// The double puppet of the configuration, if it turns one on.
    pub fn from_config(config: &Config) -> Result<Option<DoublePuppet>, ClientError> {
        config
            .double_puppet
            .as_token
            .as_deref()
            .map(|token| {
                HomeserverClient::new(&config.homeserver.url, token).map(|client| DoublePuppet {
                    client,
                    confirmed: Mutex::default(),
                })
            })
            .transpose()
    }

    /// The client to use, with `?user_id=` the user to act as.
    pub fn client(&self) -> &HomeserverClient {
        &self.client
    }

    /// Whether the homeserver lets the token act as `user_id` (the user is
    /// local and inside the registration's namespace); asked once per user
    /// while it says yes.
    pub async fn can_act_as(&self, user_id: &UserId) -> bool {
        let confirmed = |set: &mut HashSet<OwnedUserId>| set.contains(user_id);
        if confirmed(
            &mut self
                .confirmed
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ) {
            return true;
        }
        match self.client.whoami(Some(user_id)).await {
            Ok(who) if who == user_id => {
                self.confirmed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(who);
                true
            }
            Ok(_) => false,
            Err(error) => {
                tracing::debug!(%user_id, %error, "double puppeting is not available for this user");
                false
            }
        }
    }
}
