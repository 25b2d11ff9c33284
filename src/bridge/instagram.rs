//! The bridge's Instagram side as `config.yaml` describes it: the connector
//! spec loaded from `instagram.connector` (or the one built into the binary
//! when no file is named) with the configured base-URL overrides, and the stored credentials of logins (the one place that
//! defines how a login's [`Credentials`] are sealed in the database).

use std::path::Path;

use crate::config::Config;
use crate::connector::auth::{Credentials, DeviceIdentity};
use crate::connector::http::{BaseUrls, Connector};
use crate::connector::spec::{Spec, SpecError};
use crate::secrets::{CredentialCipher, Sealed, SecretsError};
use crate::store::{login_id, LoginRecord, Store, StoreError};

/// `connectors/instagram.yaml` as it was when the binary was built, so the
/// binary runs without the source tree.
pub const BUILTIN_SPEC: &str = include_str!("../../connectors/instagram.yaml");

/// How the built-in spec is named in messages and logs.
pub const BUILTIN_SPEC_NAME: &str = "built-in connectors/instagram.yaml";

/// The spec file at `path`, or the built-in spec when there is none.
pub fn load_spec(path: Option<&Path>) -> Result<Spec, SpecError> {
    match path {
        Some(path) => Spec::load(path),
        None => Spec::parse(BUILTIN_SPEC_NAME, BUILTIN_SPEC),
    }
}

/// Loads the spec named by `instagram.connector` (relative to the directory
/// of `config_path`), else the built-in one, and points it at the configured
/// base URLs.
pub fn load_connector(config: &Config, config_path: &Path) -> Result<Connector, SpecError> {
    let instagram = &config.instagram;
    let spec = load_spec(instagram.connector_path(config_path).as_deref())?;
    let base_urls = BaseUrls::with_overrides(
        &spec.api,
        instagram.api_base_url.as_deref(),
        instagram.web_base_url.as_deref(),
        instagram.upload_base_url.as_deref(),
    );
    Ok(Connector::new(spec, base_urls))
}

/// Why a login's stored credentials could not be read or saved. Never
/// carries a credential value.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("there is no Instagram login {id}; log in with the bot's `login` command")]
    NoLogin { id: String },
    #[error("cannot open the Instagram credentials stored for the login {id}: {source}")]
    Open { id: String, source: SecretsError },
    #[error("cannot seal the Instagram credentials of the login {id}: {source}")]
    Seal { id: String, source: SecretsError },
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Logins with their credentials: the store plus the cipher that seals
/// credentials at rest. The sealed blob is [`Credentials`] as JSON, sealed
/// for the login's id.
#[derive(Debug, Clone)]
pub struct Logins {
    store: Store,
    cipher: CredentialCipher,
}

impl Logins {
    pub fn new(store: Store, cipher: CredentialCipher) -> Logins {
        Logins { store, cipher }
    }

    /// Stores a fresh login of `mxid` to the Instagram account
    /// `ig_user_id`, in state `connected`. Logging in again to an account the
    /// user already has a login to replaces that login's credentials and
    /// keeps its id (so its portals) and its whole device identity.
    pub async fn save_new(
        &self,
        mxid: &str,
        ig_user_id: &str,
        username: Option<String>,
        credentials: &Credentials,
    ) -> Result<LoginRecord, LoginError> {
        let mut credentials = credentials.clone();
        let id = match self.store.login_of_account(mxid, ig_user_id).await? {
            Some(existing) => {
                credentials = Credentials {
                    state: credentials.state,
                    ..Credentials::with_device(credentials.cookies, self.device_of(&existing))
                };
                existing.id
            }
            None => login_id(mxid, ig_user_id),
        };
        let record = LoginRecord {
            credentials: self.seal(&id, &credentials)?,
            id,
            mxid: mxid.to_owned(),
            ig_user_id: Some(ig_user_id.to_owned()),
            username,
            device_uuid: credentials.device_id.clone(),
            state: super::login_state::LoginState::Connected
                .as_str()
                .to_owned(),
        };
        self.store.upsert_login(&record).await?;
        Ok(record)
    }

    /// The device identity a new session of `mxid` to the Instagram account
    /// `ig_user_id` (when known) is made with: the existing login's, which
    /// it keeps for its life, or a new one.
    pub async fn device_for(
        &self,
        mxid: &str,
        ig_user_id: Option<&str>,
    ) -> Result<DeviceIdentity, LoginError> {
        let existing = match ig_user_id {
            Some(ig_user_id) => self.store.login_of_account(mxid, ig_user_id).await?,
            None => None,
        };
        Ok(existing.map_or_else(DeviceIdentity::random, |login| self.device_of(&login)))
    }

    /// A stored login's device identity.
    fn device_of(&self, login: &LoginRecord) -> DeviceIdentity {
        match self
            .cipher
            .open_json::<Credentials>(&login.id, &login.credentials)
        {
            Ok(stored) => stored.device(),
            // Unreadable (the key changed): its uuid is kept in the clear.
            Err(_) => DeviceIdentity::from_uuid_only(&login.device_uuid),
        }
    }

    /// The credentials stored for the login `id`.
    pub async fn credentials(&self, id: &str) -> Result<Credentials, LoginError> {
        let record = self
            .store
            .login(id)
            .await?
            .ok_or_else(|| LoginError::NoLogin { id: id.to_owned() })?;
        self.cipher
            .open_json(id, &record.credentials)
            .map_err(|source| LoginError::Open {
                id: id.to_owned(),
                source,
            })
    }

    /// Replaces the stored credentials of the login `id` (after response
    /// hooks updated its auth state); the rest of the login is left alone.
    pub async fn update_credentials(
        &self,
        id: &str,
        credentials: &Credentials,
    ) -> Result<(), LoginError> {
        let sealed = self.seal(id, credentials)?;
        if self.store.set_login_credentials(id, &sealed).await? {
            Ok(())
        } else {
            Err(LoginError::NoLogin { id: id.to_owned() })
        }
    }

    /// Seals credentials for the login `id` (bound to it: a blob copied onto
    /// another login does not open).
    fn seal(&self, id: &str, credentials: &Credentials) -> Result<Sealed, LoginError> {
        self.cipher
            .seal_json(id, credentials)
            .map_err(|source| LoginError::Seal {
                id: id.to_owned(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config path in the crate root, beside `connectors/`.
    fn config_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config.yaml")
    }

    #[test]
    fn the_connector_uses_the_configured_base_urls() {
        let mut config = Config::example();
        let spec_defaults = load_connector(&config, &config_path()).unwrap();
        assert_eq!(
            spec_defaults.base_urls().api,
            "https://i.instagram.com/api/v1"
        );

        config.instagram.api_base_url = Some("http://127.0.0.1:9000/api/v1/".to_owned());
        config.instagram.upload_base_url = Some("http://127.0.0.1:9001".to_owned());
        let connector = load_connector(&config, &config_path()).unwrap();
        let urls = connector.base_urls();
        assert_eq!(urls.api, "http://127.0.0.1:9000/api/v1");
        assert_eq!(urls.web, "http://127.0.0.1:9000", "follows the API origin");
        assert_eq!(urls.upload, "http://127.0.0.1:9001");
    }

    #[test]
    fn the_built_in_spec_is_used_when_none_is_named_and_a_named_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.yaml");
        let mut config = Config::example();
        assert_eq!(config.instagram.connector, None);
        let built_in = load_connector(&config, &config_path).unwrap();
        assert_eq!(built_in.spec().source, BUILTIN_SPEC_NAME);
        assert_eq!(
            built_in.spec().actions.len(),
            Spec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors/instagram.yaml"))
                .unwrap()
                .actions
                .len(),
            "the built-in spec is connectors/instagram.yaml"
        );

        // An operator's patched copy: one action fewer than the built-in.
        let mut patched: serde_norway::Value = serde_norway::from_str(BUILTIN_SPEC).unwrap();
        patched["actions"]
            .as_mapping_mut()
            .unwrap()
            .remove("list_conversations");
        std::fs::write(
            dir.path().join("patched.yaml"),
            serde_norway::to_string(&patched).unwrap(),
        )
        .unwrap();
        config.instagram.connector = Some("patched.yaml".to_owned());
        let named = load_connector(&config, &config_path).unwrap();
        assert_eq!(
            named.spec().source,
            dir.path().join("patched.yaml").display().to_string()
        );
        assert!(!named.spec().actions.contains_key("list_conversations"));
        assert!(built_in.spec().actions.contains_key("list_conversations"));
    }

    #[test]
    fn a_missing_spec_names_the_resolved_file() {
        let mut config = Config::example();
        config.instagram.connector = Some("nowhere/instagram.yaml".to_owned());
        let error = load_connector(&config, Path::new("/etc/bridge/config.yaml")).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("/etc/bridge/nowhere/instagram.yaml: cannot read the file: "),
            "{error}"
        );
    }
}
