//! The `action` and `check-spec` commands: run one connector action and print
//! its normalized (or raw) result as JSON, or validate a spec file.
//!
//! `action` logs in with a cookie file, or with `--login MXID` as a bridge
//! user's stored login: then the bridge's config names the spec, base URLs,
//! database and key, and the auth state the action updates is saved back.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Map, Value};

use super::auth::Credentials;
use super::http::{BaseUrls, Connector};
use super::spec::Spec;
use crate::bridge::instagram::Logins;
use crate::bridge::run::load_config;
use crate::secrets::CredentialCipher;
use crate::store::Store;

/// `matrix-instagram action <connector> <action> [key=value ...]`.
#[derive(Debug, clap::Args)]
pub struct ActionArgs {
    /// Connector name (`instagram`); the spec is `connectors/<name>.yaml` unless `--spec` says otherwise.
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
    /// Run as this Matrix user's stored Instagram login. Reads the config
    /// (-c/--config) for the connector spec, base URLs, database and key, and
    /// saves the login's updated auth state back to the database.
    #[arg(long, value_name = "MXID", conflicts_with = "cookies")]
    pub login: Option<String>,
    /// The connector spec file [default: connectors/<name>.yaml, or with
    /// --login the config's instagram.connector].
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
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn action(args: ActionArgs, config_path: &Path) -> Result<String, String> {
    let params = parse_params(&args.params)?;
    let output = match &args.login {
        Some(mxid) => action_as_login(&args, mxid, config_path, params).await?,
        None => action_with_cookies(&args, params).await?,
    };
    serde_json::to_string_pretty(&output).map_err(|err| err.to_string())
}

/// Runs the action with a cookie file (or none, for a spec without cookies).
async fn action_with_cookies(args: &ActionArgs, params: Value) -> Result<Value, String> {
    let spec_path = args
        .spec
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("connectors/{}.yaml", args.connector)));
    let connector = load_connector(args, &spec_path, [None, None, None])?;
    let mut creds = match &args.cookies {
        Some(path) => Credentials::from_cookie_file(path).map_err(|err| err.to_string())?,
        None if connector.spec().auth.cookies.is_empty() => {
            Credentials::from_cookies(Default::default())
        }
        None => {
            return Err(format!(
                "{} needs a login: pass --cookies FILE or --login MXID",
                args.connector
            ))
        }
    };
    run(args, &connector, params, &mut creds).await
}

/// Runs the action as the stored login of `mxid`, then saves the auth state
/// the action changed (e.g. a refreshed `ig_www_claim`).
async fn action_as_login(
    args: &ActionArgs,
    mxid: &str,
    config_path: &Path,
    params: Value,
) -> Result<Value, String> {
    let config = load_config(config_path).map_err(|err| err.to_string())?;
    let instagram = &config.instagram;
    let spec_path = args
        .spec
        .clone()
        .unwrap_or_else(|| instagram.connector_path(config_path));
    let connector = load_connector(
        args,
        &spec_path,
        [
            instagram.api_base_url.as_deref(),
            instagram.web_base_url.as_deref(),
            instagram.upload_base_url.as_deref(),
        ],
    )?;
    let key = config.credential_key().map_err(|err| err.to_string())?;
    let store = Store::connect(&config.database.url)
        .await
        .map_err(|err| err.to_string())?;
    let logins = Logins::new(store.clone(), CredentialCipher::new(&key));
    let outcome = async {
        let mut creds = logins
            .credentials(mxid)
            .await
            .map_err(|err| err.to_string())?;
        let before = creds.clone();
        let output = run(args, &connector, params, &mut creds).await;
        // Hooks may have updated the auth state even if a later step failed.
        if creds != before {
            if let Err(err) = logins.update_credentials(mxid, &creds).await {
                let outcome = if output.is_ok() { "ran" } else { "failed" };
                return Err(format!(
                    "{} {outcome}, but the login's updated auth state was not saved: {err}",
                    args.action
                ));
            }
        }
        output
    }
    .await;
    store.close().await;
    outcome
}

/// Loads the spec and binds it to base URLs: the command-line overrides,
/// else `configured` (api, web, upload), else the spec's own.
fn load_connector(
    args: &ActionArgs,
    spec_path: &Path,
    configured: [Option<&str>; 3],
) -> Result<Connector, String> {
    let spec = Spec::load(spec_path).map_err(|err| err.to_string())?;
    if spec.meta.id != args.connector {
        return Err(format!(
            "{} is the spec of connector `{}`, not `{}`",
            spec.source, spec.meta.id, args.connector
        ));
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
    params: Value,
    creds: &mut Credentials,
) -> Result<Value, String> {
    let output = connector
        .execute(&args.action, params, creds)
        .await
        .map_err(|err| err.to_string())?;
    Ok(if args.raw {
        output.raw
    } else {
        output.normalized
    })
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
