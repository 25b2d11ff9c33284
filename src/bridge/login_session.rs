//! A login's Instagram session for one piece of work (a poll, a send, a
//! command, a read receipt, typing): the login, its opened credentials,
//! saved back when response hooks changed them, and the connector through the
//! login's request budget; and the plain words a user is told when Instagram
//! fails.

use crate::connector::auth::Credentials;
use crate::connector::http::Connector;
use crate::connector::session::ConnectorError;
use crate::secrets::CredentialCipher;
use crate::store::LoginRecord;

use super::instagram::Logins;
use super::login_state::LoginState;
use super::Bridge;

/// Why a login's session cannot be used; the text is for the user.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("you are not logged in to Instagram; send `login` in your management room")]
    NoLogin,
    #[error("your Instagram login needs you: send `login` in your management room to reconnect")]
    NeedsLogin,
    /// The database or the credential key failed (details are logged, not shown).
    #[error("the bridge cannot open your Instagram login right now; try again later")]
    Unavailable,
}

/// An opened login.
pub struct LoginSession {
    pub login: LoginRecord,
    pub creds: Credentials,
    /// The bridge's connector with this login's request budget.
    pub connector: Connector,
    saved: Credentials,
    logins: Logins,
}

impl LoginSession {
    /// Opens the login `login_id`, refusing one that waits for the user.
    pub async fn open(bridge: &Bridge, login_id: &str) -> Result<LoginSession, SessionError> {
        let login = bridge
            .store
            .login(login_id)
            .await
            .map_err(|e| {
                tracing::error!(login = login_id, error = %e, "cannot read the login");
                SessionError::Unavailable
            })?
            .ok_or(SessionError::NoLogin)?;
        if LoginState::of(&login).needs_user() {
            return Err(SessionError::NeedsLogin);
        }
        let key = bridge.config.credential_key().map_err(|e| {
            tracing::error!(error = %e, "the credential key is unusable");
            SessionError::Unavailable
        })?;
        let logins = Logins::new(bridge.store.clone(), CredentialCipher::new(&key));
        let creds = logins.credentials(login_id).await.map_err(|e| {
            tracing::error!(login = login_id, error = %e, "cannot open the login");
            SessionError::Unavailable
        })?;
        Ok(LoginSession {
            connector: bridge.login_connector(login_id),
            login,
            saved: creds.clone(),
            creds,
            logins,
        })
    }

    /// Saves the credentials when response hooks changed them.
    pub async fn save(&mut self) {
        if self.creds == self.saved {
            return;
        }
        match self
            .logins
            .update_credentials(&self.login.id, &self.creds)
            .await
        {
            Ok(()) => self.saved = self.creds.clone(),
            Err(e) => {
                tracing::warn!(login = %self.login.id, error = %e, "cannot save credentials")
            }
        }
    }
}

/// What a user is told when Instagram did not do something: plain words, no
/// response dump (the full error goes to the log).
pub fn describe_failure(error: &ConnectorError) -> String {
    match error {
        e if e.needs_login() => {
            "your Instagram session has expired; send `login` in your management room to reconnect"
                .to_owned()
        }
        ConnectorError::RateLimited { .. } => {
            "Instagram is rate-limiting this account; try again in a few minutes".to_owned()
        }
        ConnectorError::ActionBlocked { .. } => {
            "Instagram has temporarily blocked this action on your account (spam protection); \
             try again later"
                .to_owned()
        }
        ConnectorError::CoolingDown {
            remaining, cause, ..
        } => format!(
            "{}; the bridge sends nothing to Instagram for this login until {}. Try again then",
            super::budget::cause_words(*cause),
            super::budget::paused_until(*remaining)
        ),
        ConnectorError::NotFound { .. } => "Instagram says it does not exist (any more)".to_owned(),
        ConnectorError::Transient { .. } => {
            "Instagram could not be reached; try again in a moment".to_owned()
        }
        ConnectorError::Platform { status, .. } => {
            tracing::warn!(error = %error, "Instagram refused a request");
            format!("Instagram refused the request (HTTP {status})")
        }
        _ => {
            tracing::error!(error = %error, "an Instagram request failed in the bridge");
            "the bridge could not talk to Instagram properly (its log has the details)".to_owned()
        }
    }
}
