//! The `action` and `check-spec` commands: run one connector action and print
//! its normalized (or raw) result as JSON, or validate a spec file.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Map, Value};

use super::auth::Credentials;
use super::http::{BaseUrls, Connector};
use super::spec::Spec;

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
    /// The connector spec file.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Override the spec's API base URL (e.g. the simulator's http://127.0.0.1:PORT/api/v1).
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

/// Runs one action and prints its result; errors go to stderr.
pub fn run_action(args: ActionArgs) -> ExitCode {
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
    match runtime.block_on(action(args)) {
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

async fn action(args: ActionArgs) -> Result<String, String> {
    let spec_path = args
        .spec
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("connectors/{}.yaml", args.connector)));
    let spec = Spec::load(&spec_path).map_err(|err| err.to_string())?;
    if spec.meta.id != args.connector {
        return Err(format!(
            "{} is the spec of connector `{}`, not `{}`",
            spec.source, spec.meta.id, args.connector
        ));
    }
    let params = parse_params(&args.params)?;
    let mut creds = match &args.cookies {
        Some(path) => Credentials::from_cookie_file(path).map_err(|err| err.to_string())?,
        None if spec.auth.cookies.is_empty() => Credentials::from_cookies(Default::default()),
        None => {
            return Err(format!(
                "{} needs a login: pass --cookies FILE",
                args.connector
            ))
        }
    };
    let base_urls = BaseUrls::with_overrides(
        &spec.api,
        args.api_base_url.as_deref(),
        args.web_base_url.as_deref(),
        args.upload_base_url.as_deref(),
    );
    let connector = Connector::new(spec, base_urls);
    let output = connector
        .execute(&args.action, params, &mut creds)
        .await
        .map_err(|err| err.to_string())?;
    let shown = if args.raw {
        output.raw
    } else {
        output.normalized
    };
    serde_json::to_string_pretty(&shown).map_err(|err| err.to_string())
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
