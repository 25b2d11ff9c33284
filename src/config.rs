//! The bridge's configuration file (`config.yaml`): its schema, loading and
//! validation, and `matrix-instagram init`, which writes it together with the
//! matching appservice `registration.yaml`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};

use crate::secrets::{CredentialKey, SecretsError, KEY_ENV};

/// The environment variable that overrides `database.url`.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";

/// Why the configuration could not be loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `message` names the key (`appservice.listen: ...`) and the line and column.
    #[error("invalid configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration in {path}:{}", ProblemList(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
    #[error("{path} already exists; pass --force to overwrite it")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One wrong value, named by its dotted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Formats problems one per line, for [`ConfigError::Invalid`].
struct ProblemList<'a>(&'a [ConfigProblem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub homeserver: HomeserverConfig,
    pub appservice: AppserviceConfig,
    pub bot: BotConfig,
    pub puppets: PuppetConfig,
    pub database: DatabaseConfig,
    /// A Matrix user id, a server name, or `*`, mapped to a level; see
    /// [`Config::permission`].
    pub permissions: BTreeMap<String, PermissionLevel>,
    /// Every key may be left out, leaving the section empty (null in YAML).
    #[serde(default, deserialize_with = "null_as_default")]
    pub instagram: InstagramConfig,
    /// The browser login runner and browser; every key may be left out.
    #[serde(default, deserialize_with = "null_as_default")]
    pub login: LoginConfig,
    pub encryption: EncryptionConfig,
    pub logging: LoggingConfig,
    #[serde(default)]
    pub polling: PollingConfig,
    #[serde(default)]
    pub backfill: BackfillConfig,
    #[serde(default)]
    pub media: MediaConfig,
    #[serde(default)]
    pub sending: SendingConfig,
    #[serde(default)]
    pub safety: SafetyConfig,
    /// A section whose keys are all commented out reads as null: off.
    #[serde(default, deserialize_with = "null_as_default")]
    pub double_puppet: DoublePuppetConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeserverConfig {
    /// Client-server API base URL, e.g. `http://127.0.0.1:8008`.
    pub url: String,
    /// The server name in user ids (`example.org`).
    pub domain: String,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
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

impl fmt::Debug for AppserviceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppserviceConfig")
            .field("id", &self.id)
            .field("listen", &self.listen)
            .field("address", &self.address)
            .field("as_token", &"<redacted>")
            .field("hs_token", &"<redacted>")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

fn default_max_body() -> usize {
    16 * 1024 * 1024
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PuppetConfig {
    /// Localpart template; `{id}` is the Instagram user id.
    pub localpart_template: String,
    /// Displayname template; `{full_name}` (or `{name}`), `{username}` and
    /// `{id}` are filled in.
    pub displayname_template: String,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc`, a plain file path, or `postgres://...`;
    /// `DATABASE_URL` overrides it.
    pub url: String,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &crate::store::redact_url(&self.url))
            .finish()
    }
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

impl PermissionLevel {
    fn as_str(self) -> &'static str {
        match self {
            PermissionLevel::Block => "block",
            PermissionLevel::User => "user",
            PermissionLevel::Admin => "admin",
        }
    }
}

/// A section whose keys are all left out reads as YAML null (`login:` followed
/// only by comments): that is the section's defaults.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstagramConfig {
    /// Path of the connector spec; a relative path is relative to the
    /// directory of the config file (see [`InstagramConfig::connector_path`]).
    /// Unset: the spec built into the binary.
    #[serde(default)]
    pub connector: Option<String>,
    /// Overrides the spec's API base URL (the simulator in tests).
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// Overrides the spec's web base URL (the login pages).
    #[serde(default)]
    pub web_base_url: Option<String>,
    /// Overrides the spec's upload base URL (media uploads).
    #[serde(default)]
    pub upload_base_url: Option<String>,
}

impl InstagramConfig {
    /// The connector spec's path: `connector` as is when absolute, otherwise
    /// joined to the directory of the config file it was read from, so a
    /// config and its spec can move together and the bridge can be started
    /// from any working directory.
    /// None when no file is named (the built-in spec is used).
    pub fn connector_path(&self, config_path: &Path) -> Option<PathBuf> {
        self.connector
            .as_deref()
            .map(|connector| relative_to_config(connector, config_path))
    }
}

/// `path` as is when absolute, else joined to the directory of the config file.
fn relative_to_config(path: &str, config_path: &Path) -> PathBuf {
    let path = Path::new(path);
    match config_path.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_owned(),
    }
}

/// Where the browser login runner and the browser are; see
/// `crate::login::discover` for where they are looked for when unset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// The directory holding `playwright-runner.ts` and its `node_modules/`;
    /// a relative path is relative to the config file's directory.
    #[serde(default)]
    pub runner_dir: Option<String>,
    /// The Chromium executable.
    #[serde(default)]
    pub chromium: Option<String>,
    /// How long a login waits for each answer of the user (username,
    /// password, 2FA code) before it gives up.
    #[serde(default = "default_question_timeout_ms")]
    pub question_timeout_ms: u64,
}

/// Five minutes: time to find a password or a code, not to forget a login.
pub const DEFAULT_QUESTION_TIMEOUT_MS: u64 = 5 * 60 * 1000;

fn default_question_timeout_ms() -> u64 {
    DEFAULT_QUESTION_TIMEOUT_MS
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            runner_dir: None,
            chromium: None,
            question_timeout_ms: DEFAULT_QUESTION_TIMEOUT_MS,
        }
    }
}

impl LoginConfig {
    /// Makes relative paths relative to the config file's directory (done at
    /// load, so the bridge can be started from any working directory).
    fn resolve_against(&mut self, config_path: &Path) {
        for path in [&mut self.runner_dir, &mut self.chromium]
            .into_iter()
            .flatten()
        {
            *path = relative_to_config(path, config_path)
                .to_string_lossy()
                .into_owned();
        }
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// Base64 of 32 random bytes; `MATRIX_INSTAGRAM_KEY` overrides it.
    #[serde(default)]
    pub key: Option<String>,
}

impl fmt::Debug for EncryptionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.key.as_ref().map(|_| "<redacted>");
        f.debug_struct("EncryptionConfig")
            .field("key", &key)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// How often each login's inbox is polled. Times are in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollingConfig {
    /// Interval while a chat of the login had activity within `active_window_ms`.
    pub active_interval_ms: u64,
    /// Interval when all chats are quiet; the interval grows towards it.
    pub idle_interval_ms: u64,
    /// How long after the last activity a login counts as active.
    pub active_window_ms: u64,
    /// Random spread of every interval, in percent: each wait is between its
    /// interval and that much longer (never shorter, so the interval bounds
    /// the request rate).
    pub jitter_percent: u64,
    /// Longest wait after repeated errors (the backoff doubles up to it).
    pub max_backoff_ms: u64,
    /// How often the message requests (pending inbox) are polled while there
    /// are any (they are polled at once when the inbox's count changes).
    pub requests_interval_ms: u64,
    /// How often the presence of 1:1 partners is asked for while a chat of
    /// the login is active (had activity within `active_window_ms`).
    pub presence_interval_ms: u64,
    /// How often the presence of 1:1 partners is asked for while every chat
    /// is quiet.
    pub presence_idle_interval_ms: u64,
    /// Polls in a row that fail to reach Instagram (timeouts, 5xx, lost
    /// connections) before the login is marked unreachable and its owner told.
    pub unreachable_after_failures: u64,
    /// Longest a poll's request to Instagram may take before it counts as
    /// failed (and is retried).
    pub request_timeout_ms: u64,
    /// Threads whose pages one poll fetches at the same time (a burst across
    /// many chats reaches their rooms together, not one chat after another).
    pub parallel_fetches: u64,
}

impl Default for PollingConfig {
    fn default() -> PollingConfig {
        PollingConfig {
            active_interval_ms: 3_000,
            idle_interval_ms: 60_000,
            active_window_ms: 5 * 60_000,
            jitter_percent: 20,
            max_backoff_ms: 5 * 60_000,
            requests_interval_ms: 60_000,
            presence_interval_ms: 5 * 60_000,
            presence_idle_interval_ms: 30 * 60_000,
            unreachable_after_failures: 3,
            request_timeout_ms: 30_000,
            parallel_fetches: 4,
        }
    }
}

/// How much history new portals get and how far a catch-up goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackfillConfig {
    /// Messages a new portal gets from its thread's history.
    pub initial_messages: usize,
    /// On a login's first poll, the newest threads that get portals at once
    /// (the others get one when they next have activity).
    pub initial_threads: usize,
    /// Most messages one portal catches up after downtime.
    pub max_catchup_messages: usize,
}

impl Default for BackfillConfig {
    fn default() -> BackfillConfig {
        BackfillConfig {
            initial_messages: 50,
            initial_threads: 20,
            max_catchup_messages: 2_000,
        }
    }
}

/// Media bridged from Instagram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Largest file uploaded to the Matrix media repository, in bytes;
    /// bigger ones become a notice with their link.
    pub max_bytes: u64,
    /// The ffmpeg program that converts Matrix media Instagram does not take
    /// (Element's Ogg voice messages, WebM videos); empty: no conversion,
    /// such media gets a notice.
    pub ffmpeg: String,
}

impl Default for MediaConfig {
    fn default() -> MediaConfig {
        MediaConfig {
            max_bytes: 50 * 1024 * 1024,
            ffmpeg: "ffmpeg".to_owned(),
        }
    }
}

/// Matrix -> Instagram sends: how long one may take and how a failed one is
/// retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendingConfig {
    /// Tries per event in all (the first included) while Instagram answers
    /// with server errors, or not at all (a rate limit pauses the login
    /// instead, see `safety`, and uses up no try).
    pub max_attempts: u32,
    /// Wait before the first retry; it doubles after each.
    pub initial_backoff_ms: u64,
    /// Longest wait between two tries.
    pub max_backoff_ms: u64,
    /// Longest one send request may take before it counts as failed.
    pub request_timeout_ms: u64,
}

impl Default for SendingConfig {
    fn default() -> SendingConfig {
        SendingConfig {
            max_attempts: 5,
            initial_backoff_ms: 2_000,
            max_backoff_ms: 60_000,
            request_timeout_ms: 30_000,
        }
    }
}

/// A week in milliseconds: the longest cool-down.
const WEEK_MS: u64 = 7 * 24 * 3_600_000;

/// Account safety: each login's request budget (token buckets a person's pace could
/// match) and the cool-down after Instagram says "too many". Times are in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafetyConfig {
    /// Requests that only read (the inbox, thread pages, presence) one login may
    /// make at once...
    pub reads_burst: u32,
    /// ...and in a minute, sustained.
    pub reads_per_minute: u32,
    /// Requests that change something (sends, reactions, receipts, typing) one
    /// login may make at once...
    pub writes_burst: u32,
    /// ...and in a minute, sustained (Instagram flags a session that sends 30
    /// messages a minute as spam).
    pub writes_per_minute: u32,
    /// How long a login's requests pause after Instagram rate-limits it or blocks
    /// an action (`feedback_required`); doubled at each repeat.
    pub cool_down_ms: u64,
    /// Longest pause.
    pub max_cool_down_ms: u64,
    /// Quiet time after a pause after which repeats are forgotten: the login is
    /// `connected` again (until then it shows as rate-limited, though requests
    /// flow between pauses), and the next pause is `cool_down_ms` again.
    pub forget_after_ms: u64,
}

impl Default for SafetyConfig {
    fn default() -> SafetyConfig {
        SafetyConfig {
            reads_burst: 40,
            reads_per_minute: 60,
            writes_burst: 5,
            writes_per_minute: 20,
            cool_down_ms: 5 * 60_000,
            max_cool_down_ms: 4 * 3_600_000,
            forget_after_ms: 3_600_000,
        }
    }
}

/// Double puppeting: what the user sent from the Instagram app appears from
/// their own Matrix account, through a second appservice registration whose
/// `users` namespace covers the homeserver's users (not exclusively).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DoublePuppetConfig {
    /// The `as_token` of that registration; `None` turns double puppeting off.
    pub as_token: Option<String>,
}

impl fmt::Debug for DoublePuppetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = self.as_token.as_ref().map(|_| "<redacted>");
        f.debug_struct("DoublePuppetConfig")
            .field("as_token", &token)
            .finish()
    }
}

impl Config {
    /// Reads, parses and validates a config file; `DATABASE_URL` and
    /// `MATRIX_INSTAGRAM_KEY` from the environment override the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env(path, |name| std::env::var(name).ok())
    }

    /// [`Config::load`] with the environment given as a lookup function.
    pub fn load_with_env(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_yaml(&text, path, env)
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn from_yaml(
        text: &str,
        origin: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config: Config =
            serde_norway::from_str(text).map_err(|error| ConfigError::Parse {
                path: origin.to_owned(),
                message: error.to_string(),
            })?;
        if let Some(url) = env(DATABASE_URL_ENV).filter(|url| !url.is_empty()) {
            config.database.url = url;
        }
        if let Some(key) = env(KEY_ENV).filter(|key| !key.is_empty()) {
            config.encryption.key = Some(key);
        }
        config.login.resolve_against(origin);
        config.validate().map_err(|problems| ConfigError::Invalid {
            path: origin.to_owned(),
            problems,
        })?;
        Ok(config)
    }

    /// Checks every value, reporting all problems at once.
    pub fn validate(&self) -> Result<(), Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| {
            problems.push(ConfigProblem {
                key: key.to_owned(),
                message,
            })
        };

        if let Err(message) = check_http_url(&self.homeserver.url) {
            problem("homeserver.url", message);
        }
        if let Err(message) = check_server_name(&self.homeserver.domain) {
            problem("homeserver.domain", message);
        }

        let appservice = &self.appservice;
        if appservice.id.trim().is_empty() {
            problem("appservice.id", "must not be empty".to_owned());
        }
        if let Err(message) = check_http_url(&appservice.address) {
            problem("appservice.address", message);
        }
        for (key, token) in [
            ("appservice.as_token", &appservice.as_token),
            ("appservice.hs_token", &appservice.hs_token),
        ] {
            if token.trim().is_empty() {
                problem(key, "must not be empty".to_owned());
            }
        }
        if !appservice.as_token.is_empty() && appservice.as_token == appservice.hs_token {
            problem(
                "appservice.hs_token",
                "must differ from as_token (otherwise anyone holding one can act as the other side)"
                    .to_owned(),
            );
        }
        if appservice.max_body_bytes == 0 {
            problem("appservice.max_body_bytes", "must be above 0".to_owned());
        }

        if let Err(message) = check_localpart(&self.bot.localpart) {
            problem("bot.localpart", message);
        }
        if self.bot.command_prefix.trim().is_empty() {
            problem("bot.command_prefix", "must not be empty".to_owned());
        }

        match self.puppets.localpart_template.split_once("{id}") {
            None => problem(
                "puppets.localpart_template",
                "must contain {id} (the Instagram user id)".to_owned(),
            ),
            Some((prefix, suffix)) => {
                if let Err(message) = check_localpart(&format!("{prefix}0{suffix}")) {
                    problem("puppets.localpart_template", message);
                } else if self.is_puppet_localpart(&self.bot.localpart) {
                    problem(
                        "bot.localpart",
                        format!(
                            "{:?} falls inside the puppet namespace {:?}; pick a localpart the \
                             template cannot produce",
                            self.bot.localpart, self.puppets.localpart_template
                        ),
                    );
                }
            }
        }

        if self.puppets.displayname_template.trim().is_empty() {
            problem(
                "puppets.displayname_template",
                "must not be empty (use {full_name}, {username} or {id})".to_owned(),
            );
        }

        let url = &self.database.url;
        let supported = ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
            || (!url.is_empty() && !url.contains("://"));
        if !supported {
            problem(
                "database.url",
                format!(
                    "{} is not sqlite://PATH, a file path, or postgres://",
                    crate::store::redact_url(url)
                ),
            );
        }

        if self.permissions.is_empty() {
            problem(
                "permissions",
                format!(
                    "no one may use the bridge; add for example \"{}\": user",
                    self.homeserver.domain
                ),
            );
        }
        for who in self.permissions.keys() {
            if let Err(message) = check_permission_key(who) {
                problem(&format!("permissions.{who}"), message);
            }
        }

        if self.instagram.connector.as_deref().map(str::trim) == Some("") {
            problem(
                "instagram.connector",
                "must not be empty (leave it out for the built-in spec)".to_owned(),
            );
        }
        for (key, value) in [
            ("login.runner_dir", &self.login.runner_dir),
            ("login.chromium", &self.login.chromium),
        ] {
            if value.as_deref().map(str::trim) == Some("") {
                problem(key, "must not be empty (leave it out to search)".to_owned());
            }
        }
        for (key, url) in [
            ("instagram.api_base_url", &self.instagram.api_base_url),
            ("instagram.web_base_url", &self.instagram.web_base_url),
            ("instagram.upload_base_url", &self.instagram.upload_base_url),
        ] {
            if let Some(Err(message)) = url.as_deref().map(check_http_url) {
                problem(key, message);
            }
        }

        if let Err(error) = self.credential_key() {
            problem("encryption.key", error.to_string());
        }

        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.logging.level) {
            problem("logging.level", format!("not a tracing filter: {error}"));
        }
        if !matches!(self.logging.format.as_str(), "pretty" | "json") {
            problem(
                "logging.format",
                format!("must be pretty or json, not {:?}", self.logging.format),
            );
        }

        let polling = &self.polling;
        for (key, value) in [
            ("polling.active_interval_ms", polling.active_interval_ms),
            ("polling.idle_interval_ms", polling.idle_interval_ms),
            ("polling.max_backoff_ms", polling.max_backoff_ms),
            ("polling.requests_interval_ms", polling.requests_interval_ms),
            ("polling.presence_interval_ms", polling.presence_interval_ms),
            (
                "polling.presence_idle_interval_ms",
                polling.presence_idle_interval_ms,
            ),
            (
                "polling.unreachable_after_failures",
                polling.unreachable_after_failures,
            ),
            ("polling.request_timeout_ms", polling.request_timeout_ms),
            ("polling.parallel_fetches", polling.parallel_fetches),
            ("login.question_timeout_ms", self.login.question_timeout_ms),
        ] {
            if value == 0 {
                problem(key, "must be more than 0".to_owned());
            }
        }
        if polling.idle_interval_ms < polling.active_interval_ms {
            problem(
                "polling.idle_interval_ms",
                "must be at least polling.active_interval_ms".to_owned(),
            );
        }
        if self.sending.max_attempts == 0 {
            problem("sending.max_attempts", "must be at least 1".to_owned());
        }
        if self.sending.request_timeout_ms == 0 {
            problem(
                "sending.request_timeout_ms",
                "must be more than 0".to_owned(),
            );
        }
        let safety = &self.safety;
        for (key, value) in [
            ("safety.reads_burst", u64::from(safety.reads_burst)),
            (
                "safety.reads_per_minute",
                u64::from(safety.reads_per_minute),
            ),
            ("safety.writes_burst", u64::from(safety.writes_burst)),
            (
                "safety.writes_per_minute",
                u64::from(safety.writes_per_minute),
            ),
            ("safety.cool_down_ms", safety.cool_down_ms),
        ] {
            if value == 0 {
                problem(key, "must be more than 0".to_owned());
            }
        }
        if safety.max_cool_down_ms < safety.cool_down_ms {
            problem(
                "safety.max_cool_down_ms",
                "must be at least safety.cool_down_ms".to_owned(),
            );
        }
        if safety.max_cool_down_ms > WEEK_MS {
            problem(
                "safety.max_cool_down_ms",
                format!("must be at most a week ({WEEK_MS})"),
            );
        }
        if self.media.max_bytes == 0 {
            problem("media.max_bytes", "must be more than 0".to_owned());
        }
        if self
            .double_puppet
            .as_token
            .as_ref()
            .is_some_and(|token| token.trim().is_empty())
        {
            problem(
                "double_puppet.as_token",
                "must not be empty (leave it out to turn double puppeting off)".to_owned(),
            );
        }

        if polling.jitter_percent > 90 {
            problem("polling.jitter_percent", "must be at most 90".to_owned());
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// What a Matrix user may do: an entry for their exact user id wins over
    /// one for their server name, which wins over `*`; no entry means Block.
    pub fn permission(&self, mxid: &str) -> PermissionLevel {
        let server = mxid.split_once(':').map(|(_, server)| server);
        self.permissions
            .get(mxid)
            .or_else(|| server.and_then(|server| self.permissions.get(server)))
            .or_else(|| self.permissions.get("*"))
            .copied()
            .unwrap_or(PermissionLevel::Block)
    }

    /// The credential encryption key (after the environment override).
    pub fn credential_key(&self) -> Result<CredentialKey, SecretsError> {
        match &self.encryption.key {
            Some(key) => CredentialKey::from_base64(key),
            None => Err(SecretsError::KeyMissing),
        }
    }

    /// The bot's user id.
    pub fn bot_mxid(&self) -> String {
        format!("@{}:{}", self.bot.localpart, self.homeserver.domain)
    }

    /// The user id of the puppet standing for an Instagram user.
    pub fn puppet_mxid(&self, ig_user_id: &str) -> String {
        let localpart = self.puppets.localpart_template.replace("{id}", ig_user_id);
        format!("@{localpart}:{}", self.homeserver.domain)
    }

    /// A puppet's display name from the template. An empty or missing full
    /// name falls back to the username, then to the id.
    pub fn puppet_displayname(
        &self,
        name: Option<&str>,
        username: Option<&str>,
        id: &str,
    ) -> String {
        fn present(value: Option<&str>) -> Option<&str> {
            value.map(str::trim).filter(|value| !value.is_empty())
        }
        let username = present(username).unwrap_or(id);
        let name = present(name).unwrap_or(username);
        self.puppets
            .displayname_template
            .replace("{full_name}", name)
            .replace("{name}", name)
            .replace("{username}", username)
            .replace("{id}", id)
    }

    /// The Instagram user id a puppet's user id stands for, if it is one.
    pub fn puppet_ig_id<'a>(&self, mxid: &'a str) -> Option<&'a str> {
        let localpart = mxid
            .strip_prefix('@')?
            .strip_suffix(self.homeserver.domain.as_str())?
            .strip_suffix(':')?;
        let (prefix, suffix) = self.puppets.localpart_template.split_once("{id}")?;
        let id = localpart.strip_prefix(prefix)?.strip_suffix(suffix)?;
        (!id.is_empty()).then_some(id)
    }

    fn is_puppet_localpart(&self, localpart: &str) -> bool {
        self.puppet_ig_id(&format!("@{localpart}:{}", self.homeserver.domain))
            .is_some()
    }

    /// The registration regex of every puppet user id (anchored, escaped).
    pub fn puppet_user_regex(&self) -> String {
        let (prefix, suffix) = self
            .puppets
            .localpart_template
            .split_once("{id}")
            .unwrap_or((self.puppets.localpart_template.as_str(), ""));
        format!(
            "^@{}.+{}:{}$",
            regex::escape(prefix),
            regex::escape(suffix),
            regex::escape(&self.homeserver.domain)
        )
    }

    /// The registration regex of the bot's user id (anchored, escaped).
    pub fn bot_user_regex(&self) -> String {
        format!("^{}$", regex::escape(&self.bot_mxid()))
    }

    /// The appservice registration matching this config.
    pub fn registration(&self) -> Registration {
        let users = [self.bot_user_regex(), self.puppet_user_regex()]
            .into_iter()
            .map(|regex| Namespace {
                exclusive: true,
                regex,
            })
            .collect();
        Registration {
            id: self.appservice.id.clone(),
            url: self.appservice.address.clone(),
            as_token: self.appservice.as_token.clone(),
            hs_token: self.appservice.hs_token.clone(),
            sender_localpart: self.bot.localpart.clone(),
            rate_limited: false,
            receive_ephemeral: true,
            namespaces: Namespaces {
                users,
                aliases: Vec::new(),
                rooms: Vec::new(),
            },
        }
    }

    /// The config as a YAML file with a comment on every key.
    pub fn to_documented_yaml(&self) -> String {
        let mut permissions = String::new();
        for (who, level) in &self.permissions {
            permissions.push_str(&format!("  {}: {}\n", yaml_str(who), level.as_str()));
        }
        let optional = |key: &str, value: &Option<String>, example: &str| match value {
            Some(value) => format!("{key}: {}", yaml_str(value)),
            None => format!("# {key}: {}", yaml_str(example)),
        };
        let replacements = [
            ("@HOMESERVER_URL@", yaml_str(&self.homeserver.url)),
            ("@DOMAIN@", yaml_str(&self.homeserver.domain)),
            ("@AS_ID@", yaml_str(&self.appservice.id)),
            ("@LISTEN@", yaml_str(&self.appservice.listen.to_string())),
            ("@ADDRESS@", yaml_str(&self.appservice.address)),
            ("@AS_TOKEN@", yaml_str(&self.appservice.as_token)),
            ("@HS_TOKEN@", yaml_str(&self.appservice.hs_token)),
            ("@MAX_BODY@", self.appservice.max_body_bytes.to_string()),
            ("@BOT_LOCALPART@", yaml_str(&self.bot.localpart)),
            ("@BOT_DISPLAYNAME@", yaml_str(&self.bot.displayname)),
            (
                "@BOT_AVATAR@",
                optional("avatar_url", &self.bot.avatar_url, "mxc://example.org/abc"),
            ),
            ("@COMMAND_PREFIX@", yaml_str(&self.bot.command_prefix)),
            (
                "@PUPPET_LOCALPART@",
                yaml_str(&self.puppets.localpart_template),
            ),
            (
                "@PUPPET_DISPLAYNAME@",
                yaml_str(&self.puppets.displayname_template),
            ),
            ("@DATABASE_URL@", yaml_str(&self.database.url)),
            ("@PERMISSIONS@\n", permissions),
            (
                "@CONNECTOR@",
                optional(
                    "connector",
                    &self.instagram.connector,
                    "/etc/matrix-instagram/instagram.yaml",
                ),
            ),
            (
                "@RUNNER_DIR@",
                optional(
                    "runner_dir",
                    &self.login.runner_dir,
                    "/opt/matrix-instagram/scripts",
                ),
            ),
            (
                "@CHROMIUM@",
                optional("chromium", &self.login.chromium, "/usr/bin/chromium"),
            ),
            (
                "@QUESTION_TIMEOUT@",
                match self.login.question_timeout_ms {
                    DEFAULT_QUESTION_TIMEOUT_MS => {
                        format!("# question_timeout_ms: {DEFAULT_QUESTION_TIMEOUT_MS}")
                    }
                    timeout => format!("question_timeout_ms: {timeout}"),
                },
            ),
            (
                "@API_BASE_URL@",
                optional(
                    "api_base_url",
                    &self.instagram.api_base_url,
                    "http://127.0.0.1:8080/api/v1",
                ),
            ),
            (
                "@WEB_BASE_URL@",
                optional(
                    "web_base_url",
                    &self.instagram.web_base_url,
                    "http://127.0.0.1:8080",
                ),
            ),
            (
                "@UPLOAD_BASE_URL@",
                optional(
                    "upload_base_url",
                    &self.instagram.upload_base_url,
                    "http://127.0.0.1:8080",
                ),
            ),
            (
                "@KEY@",
                optional("key", &self.encryption.key, "BASE64_OF_32_RANDOM_BYTES"),
            ),
            ("@LOG_LEVEL@", yaml_str(&self.logging.level)),
            ("@LOG_FORMAT@", yaml_str(&self.logging.format)),
            ("@POLL_ACTIVE@", self.polling.active_interval_ms.to_string()),
            ("@POLL_IDLE@", self.polling.idle_interval_ms.to_string()),
            ("@POLL_WINDOW@", self.polling.active_window_ms.to_string()),
            ("@POLL_JITTER@", self.polling.jitter_percent.to_string()),
            ("@POLL_BACKOFF@", self.polling.max_backoff_ms.to_string()),
            (
                "@POLL_REQUESTS@",
                self.polling.requests_interval_ms.to_string(),
            ),
            (
                "@POLL_PRESENCE@",
                self.polling.presence_interval_ms.to_string(),
            ),
            (
                "@POLL_PRESENCE_IDLE@",
                self.polling.presence_idle_interval_ms.to_string(),
            ),
            (
                "@POLL_UNREACHABLE@",
                self.polling.unreachable_after_failures.to_string(),
            ),
            (
                "@POLL_TIMEOUT@",
                self.polling.request_timeout_ms.to_string(),
            ),
            ("@POLL_PARALLEL@", self.polling.parallel_fetches.to_string()),
            (
                "@BACKFILL_MESSAGES@",
                self.backfill.initial_messages.to_string(),
            ),
            (
                "@BACKFILL_THREADS@",
                self.backfill.initial_threads.to_string(),
            ),
            (
                "@BACKFILL_CATCHUP@",
                self.backfill.max_catchup_messages.to_string(),
            ),
            ("@MEDIA_MAX_BYTES@", self.media.max_bytes.to_string()),
            ("@MEDIA_FFMPEG@", yaml_str(&self.media.ffmpeg)),
            ("@SEND_ATTEMPTS@", self.sending.max_attempts.to_string()),
            (
                "@SEND_BACKOFF@",
                self.sending.initial_backoff_ms.to_string(),
            ),
            (
                "@SEND_MAX_BACKOFF@",
                self.sending.max_backoff_ms.to_string(),
            ),
            (
                "@SEND_TIMEOUT@",
                self.sending.request_timeout_ms.to_string(),
            ),
            ("@READS_BURST@", self.safety.reads_burst.to_string()),
            (
                "@READS_PER_MINUTE@",
                self.safety.reads_per_minute.to_string(),
            ),
            ("@WRITES_BURST@", self.safety.writes_burst.to_string()),
            (
                "@WRITES_PER_MINUTE@",
                self.safety.writes_per_minute.to_string(),
            ),
            ("@COOL_DOWN@", self.safety.cool_down_ms.to_string()),
            ("@MAX_COOL_DOWN@", self.safety.max_cool_down_ms.to_string()),
            ("@FORGET_AFTER@", self.safety.forget_after_ms.to_string()),
            (
                "@DOUBLE_PUPPET_TOKEN@",
                optional(
                    "as_token",
                    &self.double_puppet.as_token,
                    "TOKEN-OF-THE-DOUBLE-PUPPET-REGISTRATION",
                ),
            ),
        ];
        let mut text = CONFIG_TEMPLATE.to_owned();
        for (placeholder, value) in replacements {
            text = text.replace(placeholder, &value);
        }
        text
    }

    /// The documented example configuration (`config/example.yaml`): fixed
    /// placeholder secrets, so the file is stable and obviously not for use.
    pub fn example() -> Config {
        let mut config = Config::with_defaults(
            "https://matrix.example.org".to_owned(),
            "example.org".to_owned(),
            DEFAULT_LISTEN
                .parse()
                .expect("DEFAULT_LISTEN is a socket address"),
            None,
            DEFAULT_DATABASE_URL.to_owned(),
        );
        config.appservice.as_token = "CHANGE-ME-as-token-use-matrix-instagram-init".to_owned();
        config.appservice.hs_token = "CHANGE-ME-hs-token-use-matrix-instagram-init".to_owned();
        // 32 bytes of the text "example-key-CHANGE-ME-do-not-use".
        config.encryption.key = Some("ZXhhbXBsZS1rZXktQ0hBTkdFLU1FLWRvLW5vdC11c2U=".to_owned());
        config
    }

    /// A config with the defaults of `init`: fresh random tokens and key.
    pub fn with_defaults(
        homeserver_url: String,
        domain: String,
        listen: SocketAddr,
        address: Option<String>,
        database_url: String,
    ) -> Config {
        let permissions = BTreeMap::from([(domain.clone(), PermissionLevel::User)]);
        Config {
            homeserver: HomeserverConfig {
                url: homeserver_url,
                domain,
            },
            appservice: AppserviceConfig {
                id: "instagram".to_owned(),
                listen,
                address: address.unwrap_or_else(|| format!("http://{listen}")),
                as_token: random_token(),
                hs_token: random_token(),
                max_body_bytes: default_max_body(),
            },
            bot: BotConfig {
                localpart: "instagrambot".to_owned(),
                displayname: "Instagram bridge bot".to_owned(),
                avatar_url: None,
                command_prefix: default_prefix(),
            },
            puppets: PuppetConfig {
                localpart_template: "instagram_{id}".to_owned(),
                displayname_template: "{full_name} (Instagram)".to_owned(),
            },
            database: DatabaseConfig { url: database_url },
            permissions,
            instagram: InstagramConfig {
                connector: None,
                api_base_url: None,
                web_base_url: None,
                upload_base_url: None,
            },
            login: LoginConfig::default(),
            encryption: EncryptionConfig {
                key: Some(CredentialKey::generate().to_base64()),
            },
            logging: LoggingConfig {
                level: "info".to_owned(),
                format: default_format(),
            },
            polling: PollingConfig::default(),
            backfill: BackfillConfig::default(),
            media: MediaConfig::default(),
            sending: SendingConfig::default(),
            safety: SafetyConfig::default(),
            double_puppet: DoublePuppetConfig::default(),
        }
    }
}

/// The database `init` configures: a SQLite file beside the config.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://matrix-instagram.db?mode=rwc";

/// Where the appservice API listens unless `init --listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:29330";

/// A random 64-character alphanumeric token.
fn random_token() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 64)
}

/// A YAML double-quoted scalar: JSON string syntax is valid YAML.
fn yaml_str(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}

fn check_http_url(text: &str) -> Result<(), String> {
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        Ok(_) => Err(format!("{text:?} must be an http:// or https:// URL")),
        Err(error) => Err(format!("{text:?} is not a URL: {error}")),
    }
}

fn check_server_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a server name such as example.org (no scheme, path or spaces)"
        ))
    }
}

fn check_localpart(localpart: &str) -> Result<(), String> {
    if localpart.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let valid = localpart.chars().all(|c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '=' | '-' | '/')
    });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{localpart:?} may hold only a-z, 0-9 and . _ = - / (a Matrix user id localpart)"
        ))
    }
}

fn check_permission_key(who: &str) -> Result<(), String> {
    if who == "*" {
        return Ok(());
    }
    match who.strip_prefix('@') {
        Some(user) => match user.split_once(':') {
            Some((localpart, server)) if !localpart.is_empty() => check_server_name(server),
            _ => Err(format!(
                "{who:?} is not a user id such as @alice:example.org"
            )),
        },
        None => check_server_name(who)
            .map_err(|_| format!("{who:?} is not a user id, a server name or \"*\"")),
    }
}

/// An appservice registration file (`registration.yaml`) as Synapse reads it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    pub id: String,
    pub url: String,
    pub as_token: String,
    pub hs_token: String,
    pub sender_localpart: String,
    pub rate_limited: bool,
    /// Stable MSC2409: typing, receipts and presence in transactions. The
    /// unstable `de.sorunome.msc2409.push_ephemeral` is deliberately not set:
    /// with both, Synapse sends every ephemeral event twice.
    pub receive_ephemeral: bool,
    pub namespaces: Namespaces,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Namespaces {
    pub users: Vec<Namespace>,
    pub aliases: Vec<Namespace>,
    pub rooms: Vec<Namespace>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    pub exclusive: bool,
    pub regex: String,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("as_token", &"<redacted>")
            .field("hs_token", &"<redacted>")
            .field("sender_localpart", &self.sender_localpart)
            .field("rate_limited", &self.rate_limited)
            .field("receive_ephemeral", &self.receive_ephemeral)
            .field("namespaces", &self.namespaces)
            .finish()
    }
}

impl Registration {
    /// The registration as YAML, with a header saying where it goes.
    pub fn to_yaml(&self) -> String {
        let body = serde_norway::to_string(self).expect("a registration serializes to YAML");
        format!(
            "# Appservice registration for matrix-instagram, written by `matrix-instagram init`.\n\
             # Add this file's path to `app_service_config_files` in Synapse's homeserver.yaml.\n\
             # The tokens must match config.yaml; keep this file secret.\n{body}"
        )
    }
}

/// What `matrix-instagram init` writes and where.
#[derive(Clone)]
pub struct InitOptions {
    pub config_path: PathBuf,
    pub registration_path: PathBuf,
    pub homeserver_url: String,
    pub domain: String,
    pub listen: SocketAddr,
    /// The URL the homeserver uses to reach the bridge; `http://{listen}` if unset.
    pub address: Option<String>,
    pub database_url: String,
    /// Overwrite existing files.
    pub force: bool,
}

impl fmt::Debug for InitOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitOptions")
            .field("config_path", &self.config_path)
            .field("registration_path", &self.registration_path)
            .field("homeserver_url", &self.homeserver_url)
            .field("domain", &self.domain)
            .field("listen", &self.listen)
            .field("address", &self.address)
            .field(
                "database_url",
                &crate::store::redact_url(&self.database_url),
            )
            .field("force", &self.force)
            .finish()
    }
}

/// Writes a documented config and the matching registration, refusing to
/// overwrite either file unless `force`. Returns the config written.
pub fn init(options: &InitOptions) -> Result<Config, ConfigError> {
    let config = Config::with_defaults(
        options.homeserver_url.clone(),
        options.domain.clone(),
        options.listen,
        options.address.clone(),
        options.database_url.clone(),
    );
    config.validate().map_err(|problems| ConfigError::Invalid {
        path: options.config_path.clone(),
        problems,
    })?;
    if !options.force {
        for path in [&options.config_path, &options.registration_path] {
            if path.exists() {
                return Err(ConfigError::Exists { path: path.clone() });
            }
        }
    }
    write_secret_file(&options.config_path, &config.to_documented_yaml())?;
    write_secret_file(&options.registration_path, &config.registration().to_yaml())?;
    Ok(config)
}

/// What `init` prints: the files written and how to wire them into Synapse.
pub fn init_summary(options: &InitOptions, config: &Config) -> String {
    let registration = std::fs::canonicalize(&options.registration_path)
        .unwrap_or_else(|_| options.registration_path.clone());
    let connector_note = match config.instagram.connector_path(&options.config_path) {
        Some(connector) if !connector.exists() => format!(
            " The connector spec {} is not there (a relative instagram.connector is relative \
             to the config's directory): copy it beside the config, give an absolute path, or \
             leave the key out for the built-in spec.",
            connector.display()
        ),
        _ => String::new(),
    };
    format!(
        "Wrote {config_path} (bridge configuration) and {registration_path} (appservice registration).\n\
         \n\
         Next steps:\n\
         1. Review {config_path}: permissions, database.url, instagram.connector.{connector_note}\n\
         2. Add the registration to Synapse's homeserver.yaml and restart Synapse:\n\
         \n\
         \x20      app_service_config_files:\n\
         \x20        - {registration}\n\
         \n\
         3. Make sure Synapse can reach the bridge at {address}.\n\
         4. Start the bridge: matrix-instagram -c {config_path} run\n\
         5. Invite {bot} to a room and send `help`.",
        config_path = options.config_path.display(),
        registration_path = options.registration_path.display(),
        registration = registration.display(),
        address = config.appservice.address,
        bot = config.bot_mxid(),
    )
}

/// Writes a file only its owner can read: both files hold tokens.
fn write_secret_file(path: &Path, contents: &str) -> Result<(), ConfigError> {
    let write_failed = |source| ConfigError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(write_failed)?;
    file.write_all(contents.as_bytes()).map_err(write_failed)
}

const CONFIG_TEMPLATE: &str = r#"# matrix-instagram configuration. `matrix-instagram init` writes one with fresh
# tokens and key. Every key is described above it. Two environment variables
# override the file: DATABASE_URL replaces database.url and MATRIX_INSTAGRAM_KEY
# replaces encryption.key. This file holds secrets (tokens, the encryption key):
# keep it private.

# The Matrix homeserver the bridge belongs to.
homeserver:
  # Client-server API base URL the bridge uses to reach the homeserver.
  url: @HOMESERVER_URL@
  # The server name: the part after the colon in user ids (@alice:example.org).
  domain: @DOMAIN@

# The application service link. These values must match registration.yaml,
# which `init` writes alongside this file.
appservice:
  # The registration's id; unique among the homeserver's appservices.
  id: @AS_ID@
  # Address and port where the bridge listens for the homeserver's transactions.
  listen: @LISTEN@
  # The URL the homeserver uses to reach `listen` (the registration's url).
  address: @ADDRESS@
  # Token the bridge presents to the homeserver. Secret.
  as_token: @AS_TOKEN@
  # Token the homeserver presents to the bridge; other requests are refused. Secret.
  hs_token: @HS_TOKEN@
  # Largest transaction body accepted from the homeserver, in bytes.
  max_body_bytes: @MAX_BODY@

# The bridge bot that users talk to (!login, !help, ...).
bot:
  # Localpart of the bot's user id (@LOCALPART:domain).
  localpart: @BOT_LOCALPART@
  # Display name of the bot.
  displayname: @BOT_DISPLAYNAME@
  # mxc:// URI of the bot's avatar; leave it out for none.
  @BOT_AVATAR@
  # Prefix for bot commands typed outside the management room.
  command_prefix: @COMMAND_PREFIX@

# Ghost users that stand for Instagram users.
puppets:
  # Localpart template; {id} is the Instagram user id. The registration
  # reserves every user id this template can produce.
  localpart_template: @PUPPET_LOCALPART@
  # Display name template; {full_name} (the username when there is none),
  # {username} and {id} are filled in.
  displayname_template: @PUPPET_DISPLAYNAME@

# Where the bridge keeps its state.
database:
  # sqlite://PATH?mode=rwc (or a plain file path) for SQLite, or
  # postgres://USER:PASSWORD@HOST:PORT/DATABASE for PostgreSQL.
  url: @DATABASE_URL@

# Who may use the bridge. Keys: a user id (@alice:example.org), a server
# name (example.org) or "*" for everyone. Levels: block; user (may bridge
# their own Instagram account); admin (may also run admin commands). The most
# specific key wins: user id, then server name, then "*"; no match is block.
permissions:
@PERMISSIONS@

# The Instagram side.
instagram:
  # Path of an Instagram connector spec file; leave it out to use the spec
  # built into the binary. A relative path is relative to the directory of
  # this file (not to the working directory).
  @CONNECTOR@
  # Replaces the spec's API base URL (a test simulator); leave it out for Instagram.
  # When only this is set, the web and upload URLs default to its origin.
  @API_BASE_URL@
  # Replaces the spec's web base URL (the login pages); leave it out for Instagram.
  @WEB_BASE_URL@
  # Replaces the spec's upload base URL (media uploads); leave it out for Instagram.
  @UPLOAD_BASE_URL@

# The browser login (`login` command): a Playwright runner driving Chromium.
login:
  # Directory of playwright-runner.ts and its node_modules (npm ci). Left out:
  # MATRIX_INSTAGRAM_SCRIPTS_DIR, then scripts/ beside the binary, then the
  # scripts/ of the source tree the binary was built from. Relative paths are
  # relative to the directory of this file.
  @RUNNER_DIR@
  # The Chromium executable. Left out: chromium beside the binary, then
  # /usr/bin/chromium, then chromium or chromium-browser on PATH.
  @CHROMIUM@
  # How long a login waits for each answer (username, password, 2FA code)
  # before it gives up and stops its browser. Left out: 5 minutes.
  @QUESTION_TIMEOUT@

# Encryption of Instagram credentials at rest (AES-256-GCM).
encryption:
  # Base64 of 32 random bytes, e.g. from `openssl rand -base64 32`. Keep a copy:
  # without it, stored logins cannot be read. Secret.
  @KEY@

# Log output.
logging:
  # A tracing filter: info, debug, or per module: matrix_instagram=debug,info.
  level: @LOG_LEVEL@
  # pretty (for people) or json (one object per line).
  format: @LOG_FORMAT@

# How often each login's Instagram inbox is polled (times in milliseconds).
polling:
  # Interval while a chat of the login had activity in the last active_window_ms.
  active_interval_ms: @POLL_ACTIVE@
  # Interval when every chat is quiet; polling slows down towards it.
  idle_interval_ms: @POLL_IDLE@
  # How long after the last activity the short interval is kept.
  active_window_ms: @POLL_WINDOW@
  # Random spread of each interval, in percent: each wait is between the
  # interval and that much longer (never shorter, so at most one idle poll per
  # idle_interval_ms).
  jitter_percent: @POLL_JITTER@
  # Longest wait after repeated errors (the wait doubles up to it).
  max_backoff_ms: @POLL_BACKOFF@
  # How often message requests (the pending inbox) are polled while there are
  # any; a change of their count in the inbox polls them at once.
  requests_interval_ms: @POLL_REQUESTS@
  # How often the presence of 1:1 chat partners is asked for while a chat is
  # active (had activity in the last active_window_ms).
  presence_interval_ms: @POLL_PRESENCE@
  # How often it is asked for while every chat is quiet.
  presence_idle_interval_ms: @POLL_PRESENCE_IDLE@
  # Polls in a row that cannot reach Instagram (timeouts, 5xx, lost
  # connections) before the login counts as unreachable and its owner is told.
  unreachable_after_failures: @POLL_UNREACHABLE@
  # Longest one request of a poll may take before it is retried.
  request_timeout_ms: @POLL_TIMEOUT@
  # Chats whose messages one poll fetches at the same time.
  parallel_fetches: @POLL_PARALLEL@

# History bridged into portals.
backfill:
  # Messages a new portal gets from its chat's history.
  initial_messages: @BACKFILL_MESSAGES@
  # On a login's first sync, the newest chats that get portals at once; the
  # others get one when they next have activity.
  initial_threads: @BACKFILL_THREADS@
  # Most messages one portal catches up after the bridge was down.
  max_catchup_messages: @BACKFILL_CATCHUP@

# Media bridged between Instagram and Matrix.
media:
  # Largest file uploaded to the Matrix media repository, in bytes; bigger
  # files become a notice with their link.
  max_bytes: @MEDIA_MAX_BYTES@
  # The ffmpeg program that converts what you send that Instagram does not
  # take (Element's Ogg voice messages, WebM videos); "" turns conversion off
  # (such media then gets a notice).
  ffmpeg: @MEDIA_FFMPEG@

# What you send in a portal, carried out on Instagram (times in milliseconds).
sending:
  # Tries per message in all while Instagram fails or does not answer; then the
  # message is given up and the room told why. (A rate limit pauses the login
  # instead, see safety, and uses up no try.)
  max_attempts: @SEND_ATTEMPTS@
  # Wait before the first retry; it doubles after each.
  initial_backoff_ms: @SEND_BACKOFF@
  # Longest wait between two tries (a rate limit's own wait too).
  max_backoff_ms: @SEND_MAX_BACKOFF@
  # Longest one send may take before it counts as failed.
  request_timeout_ms: @SEND_TIMEOUT@

# Account safety: how fast the bridge may use each Instagram login. Requests
# beyond a burst wait their turn at the sustained rate. When Instagram
# rate-limits the account or blocks an action (feedback_required), the login's
# requests pause (messages wait, nothing is lost; you are told once), for
# longer at each repeat. Times in milliseconds.
safety:
  # Reads (inbox, chats, presence) at once...
  reads_burst: @READS_BURST@
  # ...and per minute, sustained.
  reads_per_minute: @READS_PER_MINUTE@
  # Writes (messages, reactions, read receipts, typing) at once...
  writes_burst: @WRITES_BURST@
  # ...and per minute, sustained; Instagram flags 30 messages a minute as spam.
  writes_per_minute: @WRITES_PER_MINUTE@
  # The first pause after Instagram says "too many"; doubled at each repeat...
  cool_down_ms: @COOL_DOWN@
  # ...up to this.
  max_cool_down_ms: @MAX_COOL_DOWN@
  # Quiet time after the last pause after which repeats are forgotten and the
  # login counts as connected again (you are told).
  forget_after_ms: @FORGET_AFTER@

# Double puppeting: what you send from the Instagram app appears from your own
# Matrix account instead of a puppet of your Instagram account. It needs a
# second appservice registration (its own id, as_token and a random hs_token,
# no url, `users` namespace `@.*:your.domain` with exclusive: false) loaded by
# the homeserver next to the bridge's.
double_puppet:
  # The as_token of that registration; leave it out to turn double puppeting off. Secret.
  @DOUBLE_PUPPET_TOKEN@
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with_permissions(entries: &[(&str, PermissionLevel)]) -> Config {
        let mut config = Config::example();
        config.permissions = entries
            .iter()
            .map(|(who, level)| ((*who).to_owned(), *level))
            .collect();
        config
    }

    #[test]
    fn exact_user_beats_server_beats_everyone() {
        let config = config_with_permissions(&[
            ("*", PermissionLevel::User),
            ("example.org", PermissionLevel::Admin),
            ("@mallory:example.org", PermissionLevel::Block),
            ("@alice:other.org", PermissionLevel::Admin),
        ]);
        assert_eq!(
            config.permission("@bob:example.org"),
            PermissionLevel::Admin
        );
        assert_eq!(
            config.permission("@mallory:example.org"),
            PermissionLevel::Block
        );
        assert_eq!(
            config.permission("@alice:other.org"),
            PermissionLevel::Admin
        );
        assert_eq!(config.permission("@carol:other.org"), PermissionLevel::User);
    }

    #[test]
    fn no_matching_entry_is_block() {
        let config = config_with_permissions(&[("example.org", PermissionLevel::User)]);
        assert_eq!(config.permission("@bob:example.org"), PermissionLevel::User);
        assert_eq!(
            config.permission("@eve:evil.example"),
            PermissionLevel::Block
        );
        assert_eq!(config.permission("not-a-user-id"), PermissionLevel::Block);
    }

    #[test]
    fn server_entry_does_not_match_a_longer_server_name() {
        let config = config_with_permissions(&[("example.org", PermissionLevel::User)]);
        assert_eq!(
            config.permission("@bob:evil-example.org"),
            PermissionLevel::Block
        );
        assert_eq!(
            config.permission("@bob:example.org.evil"),
            PermissionLevel::Block
        );
    }

    #[test]
    fn puppet_ids_roundtrip_through_user_ids() {
        let config = Config::example();
        let mxid = config.puppet_mxid("17841400000000001");
        assert_eq!(mxid, "@instagram_17841400000000001:example.org");
        assert_eq!(config.puppet_ig_id(&mxid), Some("17841400000000001"));
        assert_eq!(config.puppet_ig_id("@instagram_:example.org"), None);
        assert_eq!(config.puppet_ig_id("@instagrambot:example.org"), None);
        assert_eq!(config.puppet_ig_id("@instagram_1:other.org"), None);
    }

    #[test]
    fn puppet_displayname_fills_the_template_with_fallbacks() {
        let mut config = Config::example();
        config.puppets.displayname_template = "{name} (@{username}, {id})".to_owned();
        assert_eq!(
            config.puppet_displayname(Some("Bob B"), Some("bob.b"), "42"),
            "Bob B (@bob.b, 42)"
        );
        assert_eq!(
            config.puppet_displayname(Some(" "), Some("bob.b"), "42"),
            "bob.b (@bob.b, 42)"
        );
        assert_eq!(config.puppet_displayname(None, None, "42"), "42 (@42, 42)");
        // The default names the full name; the username stands in for none.
        let config = Config::example();
        assert_eq!(
            config.puppet_displayname(Some("Bob B"), Some("bob.b"), "42"),
            "Bob B (Instagram)"
        );
        assert_eq!(
            config.puppet_displayname(None, Some("bob.b"), "42"),
            "bob.b (Instagram)"
        );
    }

    #[test]
    fn relative_connector_paths_are_relative_to_the_config_file() {
        let mut instagram = Config::example().instagram;
        assert_eq!(instagram.connector_path(Path::new("config.yaml")), None);
        instagram.connector = Some("connectors/instagram.yaml".to_owned());
        assert_eq!(
            instagram.connector_path(Path::new("/etc/matrix-instagram/config.yaml")),
            Some(PathBuf::from(
                "/etc/matrix-instagram/connectors/instagram.yaml"
            ))
        );
        assert_eq!(
            instagram.connector_path(Path::new("config.yaml")),
            Some(PathBuf::from("connectors/instagram.yaml"))
        );
        instagram.connector = Some("/opt/specs/instagram.yaml".to_owned());
        assert_eq!(
            instagram.connector_path(Path::new("/etc/matrix-instagram/config.yaml")),
            Some(PathBuf::from("/opt/specs/instagram.yaml"))
        );
        let mut config = Config::example();
        config.login.runner_dir = Some("runner".to_owned());
        config.login.chromium = Some("/opt/chromium/chrome".to_owned());
        assert_eq!(
            config.login.question_timeout_ms, DEFAULT_QUESTION_TIMEOUT_MS,
            "five minutes unless set"
        );
        config.login.question_timeout_ms = 90_000;
        let loaded = Config::from_yaml(
            &config.to_documented_yaml(),
            Path::new("/etc/mi/config.yaml"),
            |_| None,
        )
        .unwrap();
        assert_eq!(loaded.login.runner_dir.as_deref(), Some("/etc/mi/runner"));
        assert_eq!(
            loaded.login.chromium.as_deref(),
            Some("/opt/chromium/chrome")
        );
        assert_eq!(loaded.login.question_timeout_ms, 90_000);
        config.login.question_timeout_ms = 0;
        let error = Config::from_yaml(
            &config.to_documented_yaml(),
            Path::new("/etc/mi/config.yaml"),
            |_| None,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("login.question_timeout_ms"),
            "{error}"
        );
    }

    #[test]
    fn registration_regexes_are_anchored_and_escaped() {
        let mut config = Config::example();
        config.puppets.localpart_template = "ig.{id}_x".to_owned();
        assert_eq!(config.puppet_user_regex(), r"^@ig\..+_x:example\.org$");
        assert_eq!(config.bot_user_regex(), r"^@instagrambot:example\.org$");
        let puppets = regex::Regex::new(&config.puppet_user_regex()).unwrap();
        assert!(puppets.is_match("@ig.123_x:example.org"));
        assert!(!puppets.is_match("@igX123_x:example.org"));
        assert!(!puppets.is_match("@ig.123_x:example.org.evil"));
    }

    #[test]
    fn validation_reports_every_problem_with_its_key() {
        let mut config = Config::example();
        config.homeserver.url = "matrix.example.org".to_owned();
        config.homeserver.domain = String::new();
        config.appservice.hs_token = config.appservice.as_token.clone();
        config.puppets.localpart_template = "instagram_".to_owned();
        config.encryption.key = Some("c2hvcnQ=".to_owned());
        config.logging.format = "xml".to_owned();
        config
            .permissions
            .insert("https://example.org".to_owned(), PermissionLevel::User);
        let keys: Vec<String> = config
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|problem| problem.key)
            .collect();
        assert_eq!(
            keys,
            [
                "homeserver.url",
                "homeserver.domain",
                "appservice.hs_token",
                "puppets.localpart_template",
                "permissions.https://example.org",
                "encryption.key",
                "logging.format",
            ]
        );
    }

    #[test]
    fn sections_with_every_key_left_out_are_their_defaults() {
        let text = Config::example().to_documented_yaml();
        let loaded = Config::from_yaml(&text, Path::new("config.yaml"), |_| None).unwrap();
        assert_eq!(loaded.instagram, InstagramConfig::default());
        // As a YAML tool rewrites it: explicit nulls.
        let mut value: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        assert!(value["login"].is_null() && value["instagram"].is_null());
        value["permissions"] = serde_norway::from_str("{example.org: user}").unwrap();
        let rewritten = serde_norway::to_string(&value).unwrap();
        let reloaded = Config::from_yaml(&rewritten, Path::new("config.yaml"), |_| None).unwrap();
        assert_eq!(reloaded, loaded);
    }

    #[test]
    fn bot_inside_the_puppet_namespace_is_rejected() {
        let mut config = Config::example();
        config.bot.localpart = "instagram_bot".to_owned();
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "bot.localpart");
        assert!(problems[0].message.contains("puppet namespace"));
    }

    #[test]
    fn missing_key_and_empty_permissions_are_problems() {
        let mut config = config_with_permissions(&[]);
        config.encryption.key = None;
        let problems = config.validate().unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].starts_with("permissions: no one may use the bridge"));
        assert!(text[1].starts_with("encryption.key: no encryption key"));
    }

    #[test]
    fn debug_output_hides_tokens_key_and_database_password() {
        let mut config = Config::example();
        config.database.url = "postgres://bridge:hunter2@db/ig".to_owned();
        let debug = format!("{config:?}");
        for secret in [
            config.appservice.as_token.as_str(),
            config.appservice.hs_token.as_str(),
            config.encryption.key.as_deref().unwrap(),
            "hunter2",
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("postgres://bridge:***@db/ig"));

        let registration = format!("{:?}", config.registration());
        assert!(!registration.contains(&config.appservice.as_token));
        assert!(!registration.contains(&config.appservice.hs_token));
        assert!(registration.contains("instagrambot"), "{registration}");

        let options = InitOptions {
            config_path: "config.yaml".into(),
            registration_path: "registration.yaml".into(),
            homeserver_url: "http://127.0.0.1:8008".to_owned(),
            domain: "example.org".to_owned(),
            listen: DEFAULT_LISTEN.parse().unwrap(),
            address: None,
            database_url: config.database.url.clone(),
            force: false,
        };
        let options = format!("{options:?}");
        assert!(!options.contains("hunter2"), "{options}");
        assert!(options.contains("postgres://bridge:***@db/ig"), "{options}");
    }

    #[test]
    fn fresh_defaults_have_distinct_random_secrets() {
        let make = || {
            Config::with_defaults(
                "http://127.0.0.1:8008".to_owned(),
                "localhost".to_owned(),
                DEFAULT_LISTEN.parse().unwrap(),
                None,
                DEFAULT_DATABASE_URL.to_owned(),
            )
        };
        let (first, second) = (make(), make());
        assert_eq!(first.appservice.as_token.len(), 64);
        assert_ne!(first.appservice.as_token, first.appservice.hs_token);
        assert_ne!(first.appservice.as_token, second.appservice.as_token);
        assert_ne!(first.encryption.key, second.encryption.key);
        assert_eq!(first.appservice.address, "http://127.0.0.1:29330");
        assert_eq!(first.validate(), Ok(()));
    }
}
