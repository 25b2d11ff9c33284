//! The bridge's configuration file (`config.yaml`): its schema, loading and
//! validation, and `matrix-instagram init`, which writes it together with the
//! matching appservice `registration.yaml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub homeserver: HomeserverConfig,
    pub appservice: AppserviceConfig,
    pub bot: BotConfig,
    pub puppets: PuppetConfig,
    pub database: DatabaseConfig,
    /// Matrix user id, `@*:domain` server part, or `*` mapped to a level.
    pub permissions: BTreeMap<String, PermissionLevel>,
    pub instagram: InstagramConfig,
    pub encryption: EncryptionConfig,
    pub logging: LoggingConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeserverConfig {
    /// Client-server API base URL, e.g. `http://127.0.0.1:8008`.
    pub url: String,
    /// The server name in user ids (`example.org`).
    pub domain: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppserviceConfig {
    /// The registration's `id`.
    pub id: String,
    /// Where the appservice API listens.
    pub listen: SocketAddr,
    /// The URL the homeserver uses to reach us (the registration's `url`).
    pub address: String,
    pub as_token: String,
    pub hs_token: String,
    /// Largest transaction body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

fn default_max_body() -> usize {
    16 * 1024 * 1024
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotConfig {
    pub localpart: String,
    pub displayname: String,
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// Prefix for commands outside the management room.
    #[serde(default = "default_prefix")]
    pub command_prefix: String,
}

fn default_prefix() -> String {
    "!ig".to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PuppetConfig {
    /// Localpart template; `{id}` is the Instagram user id.
    pub localpart_template: String,
    /// Displayname template; `{name}`, `{username}` and `{id}` are filled in.
    pub displayname_template: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` or `postgres://...`; `DATABASE_URL` overrides it.
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PermissionLevel {
    /// Not allowed to use the bridge.
    Block,
    /// May log in and bridge their own account.
    User,
    /// May also run administrative commands.
    Admin,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstagramConfig {
    /// Path of the connector spec.
    pub connector: String,
    /// Overrides the spec's API base URL (the simulator in tests).
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// Overrides the spec's web base URL (the login pages).
    #[serde(default)]
    pub web_base_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// Base64 of 32 random bytes; `MATRIX_INSTAGRAM_KEY` overrides it.
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// A tracing filter such as `info` or `matrix_instagram=debug,info`.
    pub level: String,
    /// `pretty` or `json`.
    #[serde(default = "default_format")]
    pub format: String,
}

fn default_format() -> String {
    "pretty".to_owned()
}
