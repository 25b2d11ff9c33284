//! The `action` and `check-spec` commands: run one connector action and print
//! its normalized (or raw) result as JSON, or validate a spec file. They live
//! outside the connector engine because `action --login` needs the bridge's
//! config, store and sealed logins, which the engine must not know.
//!
//! `action` logs in with a cookie file, or with `--login MXID` as a bridge
//! user's stored login: then the bridge's config names the spec, base URLs,
//! database and key, and the auth state the action updates is saved back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::bridge::instagram::{load_spec, LoginError, Logins};
use crate::bridge::run::{load_config, RunError};
use crate::connector::auth::{Credentials, CredentialsError};
use crate::connector::http::{BaseUrls, Connector, FileData};
use crate::connector::session::ConnectorError;
use crate::connector::spec::{ParamKind, Spec, SpecError};
use crate::secrets::{CredentialCipher, SecretsError};
use crate::store::{Store, StoreError};

/// Why `action` failed. Never carries a credential value.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Params(String),
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error("{spec_file} is the spec of connector `{id}`, not `{wanted}`")]
    WrongConnector {
        spec_file: String,
        id: String,
        wanted: String,
    },
    #[error("{0}")]
    Cookies(#[from] CredentialsError),
    #[error("{connector} needs a login: pass --cookies FILE or --login MXID")]
    NeedsLogin { connector: String },
    #[error("{0}")]
    Config(#[from] RunError),
    #[error("{0}")]
    Key(#[from] SecretsError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Login(#[from] LoginError),
    #[error("{0} has no Instagram login; log in with the bot's `login` command")]
    NoLogin(String),
    #[error("{mxid} has several Instagram logins ({usernames}): pass --login {mxid}/USERNAME")]
    AmbiguousLogin { mxid: String, usernames: String },
    #[error("{0}")]
    Action(#[from] ConnectorError),
    /// The action's effects happened (or it failed), but the auth state its
    /// hooks refreshed could not be saved.
    #[error("{action} {outcome}, but the login's updated auth state was not saved: {source}")]
    StateNotSaved {
        action: String,
        outcome: &'static str,
        source: LoginError,
    },
    #[error("cannot print the result as JSON: {0}")]
    Print(#[from] serde_json::Error),
}

/// `matrix-instagram action <connector> <action> [key=value ...]`.
#[derive(Debug, clap::Args)]
pub struct ActionArgs {
    /// Connector name (`instagram`); the spec is the built-in one for
    /// `instagram`, else `connectors/<name>.yaml`, unless `--spec` says otherwise.
    pub connector: String,
    /// Action name, e.g. `list_conversations`.
    pub action: String,
    /// Parameters as key=value (types are coerced: `limit=20`, `user_ids=1,2`; a file parameter takes a path).
    pub params: Vec<String>,
    /// Print the platform's raw response instead of the normalized result.
    #[arg(long)]
    pub raw: bool,
    /// Cookie file: a JSON object of cookie name to value.
    #[arg(long)]
    pub cookies: Option<PathBuf>,
    /// Run as a stored Instagram login: its id, or the Matrix user who has
    /// only one (MXID/USERNAME picks one of several). Reads the config
    /// (-c/--config) for the connector spec, base URLs, database and key, and
    /// saves the login's updated auth state back to the database.
    #[arg(long, value_name = "MXID", conflicts_with = "cookies")]
    pub login: Option<String>,
    /// The connector spec file [default: the built-in spec for instagram, else
    /// connectors/<name>.yaml; with --login the config's instagram.connector].
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Override the spec's API base URL (e.g. the simulator's http://127.0.0.1:PORT/api/v1);
    /// with --login this and the other two overrides win over the config's.
    #[arg(long, env = "MATRIX_INSTAGRAM_API_BASE_URL")]
    pub api_base_url: Option<String>,
    /// Override the web base URL (defaults to the API URL's origin when that is overridden).
    #[arg(long, env = "MATRIX_INSTAGRAM_WEB_BASE_URL")]
    pub web_base_url: Option<String>,
    /// Override the upload base URL (defaults to the API URL's origin when that is overridden).
    #[arg(long, env = "MATRIX_INSTAGRAM_UPLOAD_BASE_URL")]
    pub upload_base_url: Option<String>,
}

/// `matrix-instagram check-spec FILE`.
#[derive(Debug, clap::Args)]
pub struct CheckSpecArgs {
    pub file: PathBuf,
}

/// Validates a spec file: prints every problem and fails, or says OK.
pub fn check_spec(args: CheckSpecArgs) -> ExitCode {
    match Spec::load(&args.file) {
        Ok(spec) => {
            println!("OK: {}: {} actions", spec.source, spec.actions.len());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            eprintln!("{} problem(s) found", err.problems.len());
            ExitCode::FAILURE
        }
    }
}

/// Runs one action and prints its result; errors go to stderr. `config_path`
/// is read only with `--login`.
pub fn run_action(args: ActionArgs, config_path: &Path) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(action(args, config_path)) {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn action(args: ActionArgs, config_path: &Path) -> Result<String, ActionError> {
    let params = parse_params(&args.params).map_err(ActionError::Params)?;
    let output = match &args.login {
        Some(mxid) => action_as_login(&args, mxid, config_path, params).await?,
        None => action_with_cookies(&args, params).await?,
    };
    Ok(serde_json::to_string_pretty(&output)?)
}

/// Runs the action with a cookie file (or none, for a spec without cookies).
async fn action_with_cookies(args: &ActionArgs, params: Value) -> Result<Value, ActionError> {
    // The instagram connector's spec is built in; others are read from connectors/.
    let spec_path = args.spec.clone().or_else(|| {
        (args.connector != "instagram")
            .then(|| PathBuf::from(format!("connectors/{}.yaml", args.connector)))
    });
    let connector = load_connector(args, spec_path.as_deref(), [None, None, None])?;
    let mut creds = match &args.cookies {
        Some(path) => Credentials::from_cookie_file(path)?,
        None if connector.spec().auth.cookies.is_empty() => {
            Credentials::from_cookies(Default::default())
        }
        None => {
            return Err(ActionError::NeedsLogin {
                connector: args.connector.clone(),
            })
        }
    };
    run(args, &connector, params, &mut creds).await
}

/// Runs the action as the stored login `login` names, then saves the auth
/// state the action changed (e.g. a refreshed `ig_www_claim`).
async fn action_as_login(
    args: &ActionArgs,
    login: &str,
    config_path: &Path,
    params: Value,
) -> Result<Value, ActionError> {
    let config = load_config(config_path)?;
    let instagram = &config.instagram;
    let spec_path = args
        .spec
        .clone()
        .or_else(|| instagram.connector_path(config_path));
    let connector = load_connector(
        args,
        spec_path.as_deref(),
        [
            instagram.api_base_url.as_deref(),
            instagram.web_base_url.as_deref(),
            instagram.upload_base_url.as_deref(),
        ],
    )?;
    let key = config.credential_key()?;
    let store = Store::connect(&config.database.url).await?;
    let logins = Logins::new(store.clone(), CredentialCipher::new(&key));
    let outcome = async {
        let id = resolve_login(&store, login).await?;
        let mut creds = logins.credentials(&id).await?;
        let before = creds.clone();
        let output = run(args, &connector, params, &mut creds).await;
        // Hooks may have updated the auth state even if a later step failed.
        if creds != before {
            if let Err(source) = logins.update_credentials(&id, &creds).await {
                return Err(ActionError::StateNotSaved {
                    action: args.action.clone(),
                    outcome: if output.is_ok() { "ran" } else { "failed" },
                    source,
                });
            }
        }
        output
    }
    .await;
    store.close().await;
    outcome
}

/// The id of the login `wanted` names: a login id, a Matrix user with one
/// login, or `MXID/USERNAME`.
async fn resolve_login(store: &Store, wanted: &str) -> Result<String, ActionError> {
    if store.login(wanted).await?.is_some() {
        return Ok(wanted.to_owned());
    }
    let (mxid, username) = match wanted.rsplit_once('/') {
        Some((mxid, username)) => (mxid, Some(username.trim_start_matches('@'))),
        None => (wanted, None),
    };
    let logins = store.logins_of(mxid).await?;
    let chosen: Vec<_> = logins
        .iter()
        .filter(|login| username.is_none() || login.username.as_deref() == username)
        .collect();
    match chosen.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(ActionError::NoLogin(wanted.to_owned())),
        several => Err(ActionError::AmbiguousLogin {
            mxid: mxid.to_owned(),
            usernames: several
                .iter()
                .map(|login| login.username.as_deref().unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Loads the spec (the built-in one without a path) and binds it to base
/// URLs: the command-line overrides, else `configured` (api, web, upload),
/// else the spec's own.
fn load_connector(
    args: &ActionArgs,
    spec_path: Option<&Path>,
    configured: [Option<&str>; 3],
) -> Result<Connector, ActionError> {
    let spec = load_spec(spec_path)?;
    if spec.meta.id != args.connector {
        return Err(ActionError::WrongConnector {
            spec_file: spec.source.clone(),
            id: spec.meta.id.clone(),
            wanted: args.connector.clone(),
        });
    }
    let [api, web, upload] = configured;
    let base_urls = BaseUrls::with_overrides(
        &spec.api,
        args.api_base_url.as_deref().or(api),
        args.web_base_url.as_deref().or(web),
        args.upload_base_url.as_deref().or(upload),
    );
    Ok(Connector::new(spec, base_urls))
}

/// Executes the action and picks the result to print.
async fn run(
    args: &ActionArgs,
    connector: &Connector,
    mut params: Value,
    creds: &mut Credentials,
) -> Result<Value, ActionError> {
    let files = read_files(connector, &args.action, &mut params)?;
    let output = connector
        .execute_with_files(&args.action, params, files, creds)
        .await?;
    Ok(if args.raw {
        output.raw
    } else {
        output.normalized
    })
}

/// Reads the files the operator names for the action's `file` parameters
/// (the engine takes only bytes) and takes those parameters out of `params`.
fn read_files(
    connector: &Connector,
    action: &str,
    params: &mut Value,
) -> Result<HashMap<String, FileData>, ActionError> {
    let mut files = HashMap::new();
    let (Some(action), Value::Object(given)) = (connector.spec().action(action), params) else {
        return Ok(files);
    };
    for (name, definition) in &action.params {
        if definition.kind != ParamKind::File {
            continue;
        }
        let Some(value) = given.remove(name) else {
            continue;
        };
        let path = match value {
            Value::String(path) => PathBuf::from(path),
            _ => return Err(ActionError::Params(format!("`{name}` must be a file path"))),
        };
        let file = read_file(&path).map_err(|err| {
            ActionError::Params(format!("`{name}`: cannot read {}: {err}", path.display()))
        })?;
        files.insert(name.clone(), file);
    }
    Ok(files)
}

/// A file from disk, its type guessed from the extension.
fn read_file(path: &Path) -> std::io::Result<FileData> {
    let bytes = std::fs::read(path)?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "upload".to_owned());
    Ok(FileData {
        mime_type: mime_type_for(&name).to_owned(),
        name,
        bytes: Bytes::from(bytes),
    })
}

fn mime_type_for(name: &str) -> &'static str {
    let extension = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "m4a" => "audio/mp4",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" => "audio/ogg",
        _ => "application/octet-stream",
    }
}

/// `key=value` arguments as a JSON object of strings (the action's parameter
/// types coerce them).
fn parse_params(pairs: &[String]) -> Result<Value, String> {
    let mut params = Map::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("parameter `{pair}` is not key=value"));
        };
        if key.is_empty() {
            return Err(format!("parameter `{pair}` has no name"));
        }
        params.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    Ok(Value::Object(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_params_become_an_object() {
        assert_eq!(
            parse_params(&["limit=5".into(), "text=a=b".into()]).unwrap(),
            serde_json::json!({"limit": "5", "text": "a=b"})
        );
        assert_eq!(
            parse_params(&["oops".into()]).unwrap_err(),
            "parameter `oops` is not key=value"
        );
    }
}
