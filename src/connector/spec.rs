//! Connector spec files (`connectors/*.yaml`): the serde types of every
//! section, and loading, which validates the whole file and compiles every
//! template and response mapping up front. Loading reports every problem it
//! finds, each naming the file, the action (or section) and the field.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;
use reqwest::header::HeaderName;
use reqwest::Method;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::Value;

mod connect;
mod references;

use references::Names;

use super::expr::{self, Expr};
use super::mapping::{ResponseMapping, ResponseSpec};
use super::session::{ErrorDetectionSpec, ErrorRules, RetryPolicy, RetrySpec};
use super::template::Template;

/// Headers the HTTP client manages itself: a spec must not set them (a fixed
/// `Host` would break base-URL overrides; a manual `Accept-Encoding` would turn
/// off transparent decompression).
const CLIENT_MANAGED_HEADERS: &[&str] = &[
    "host",
    "accept-encoding",
    "connection",
    "content-length",
    "cookie",
];

/// Default request timeout when `api.timeout` is not given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------

/// One problem in a spec file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// The spec file as given (`connectors/instagram.yaml`).
    pub file: String,
    /// `action send`, `auth`, `session`, `api`, or empty for the whole file.
    pub scope: String,
    /// Dotted field inside the scope (`rest.body.text`), or empty.
    pub field: String,
    pub message: String,
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if !self.scope.is_empty() {
            write!(f, "{}: ", self.scope)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found while loading a spec file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct SpecError {
    pub problems: Vec<SpecProblem>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Collects problems while loading, each tagged with the file name.
struct Problems {
    file: String,
    list: Vec<SpecProblem>,
}

impl Problems {
    fn push(&mut self, scope: &str, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(SpecProblem {
            file: self.file.clone(),
            scope: scope.to_owned(),
            field: field.into(),
            message: message.into(),
        });
    }

    /// Deserializes one section, recording a failure with the field path serde reached.
    fn section<T: serde::de::DeserializeOwned>(
        &mut self,
        scope: &str,
        value: serde_norway::Value,
    ) -> Option<T> {
        self.section_at(scope, "", value)
    }

    /// Like [`Problems::section`] for a part found at `prefix` inside the scope.
    fn section_at<T: serde::de::DeserializeOwned>(
        &mut self,
        scope: &str,
        prefix: &str,
        value: serde_norway::Value,
    ) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(parsed) => Some(parsed),
            Err(err) => {
                let path = err.path().to_string();
                let field = match (prefix, path.as_str()) {
                    (prefix, ".") => prefix.to_owned(),
                    ("", path) => path.to_owned(),
                    (prefix, path) if path.starts_with('[') => format!("{prefix}{path}"),
                    (prefix, path) => format!("{prefix}.{path}"),
                };
                self.push(scope, field, err.into_inner().to_string());
                None
            }
        }
    }

    /// Parses a template and checks the names it reads against `names`.
    fn template(
        &mut self,
        scope: &str,
        field: &str,
        source: &str,
        names: &Names,
    ) -> Option<Template> {
        match Template::parse(source) {
            Ok(template) => {
                names.check_template(self, scope, field, &template);
                Some(template)
            }
            Err(err) => {
                self.push(scope, field, err.to_string());
                None
            }
        }
    }

    fn templates(
        &mut self,
        scope: &str,
        field: &str,
        sources: &IndexMap<String, TemplateText>,
        names: &Names,
    ) -> Vec<(String, Template)> {
        sources
            .iter()
            .filter_map(|(name, source)| {
                self.template(scope, &format!("{field}.{name}"), &source.0, names)
                    .map(|template| (name.clone(), template))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Serde types: what the YAML file says
// ---------------------------------------------------------------------------

/// A template source written as a YAML scalar: a string, or a number or
/// boolean (`limit: 1`, `edit: true`) taken as its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateText(pub String);

impl<'de> Deserialize<'de> for TemplateText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = TemplateText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TemplateText, E> {
                Ok(TemplateText(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<TemplateText, E> {
                Ok(TemplateText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TemplateText, E> {
                Ok(TemplateText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TemplateText, E> {
                Ok(TemplateText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TemplateText, E> {
                Ok(TemplateText(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// The descriptive top-level keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecMeta {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub icon: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
    /// Free text for people (and assistants) reading the spec.
    #[serde(default)]
    pub instructions: Option<String>,
}

/// `auth:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    #[serde(rename = "type")]
    pub kind: AuthKind,
    #[serde(default)]
    pub domain: Option<String>,
    /// Cookies a login must have.
    #[serde(default)]
    pub cookies: Vec<String>,
    #[serde(default)]
    pub connect: Option<ConnectSpec>,
    #[serde(default)]
    pub validate: Option<CheckSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    Cookies,
}

/// `auth.connect:` how a login is obtained interactively.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectSpec {
    pub playwright: PlaywrightSpec,
}

/// `auth.connect.playwright:` steps for the generic browser runner. Step
/// strings may use templates (`{{api.web_base_url}}`); see
/// [`Spec::render_connect_steps`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaywrightSpec {
    #[serde(default)]
    pub launch: Value,
    /// Names of the values the bridge asks the user for before the browser
    /// starts (`username`, `password`); steps read them as `{input: NAME}`.
    #[serde(default)]
    pub inputs: Vec<String>,
    pub steps: Vec<Value>,
    #[serde(default)]
    pub on_success: Option<Value>,
    #[serde(default)]
    pub on_error: IndexMap<String, Value>,
}

/// A request run for the session rather than for a user action
/// (`auth.validate`, `session.keep_alive`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// How often to run it (`4h`, `30m`); only meaningful for keep-alive.
    #[serde(default)]
    pub interval: Option<String>,
    pub rest: RestSpec,
    /// HTTP status → what the bridge should do (`reconnect_required`, `mark_disconnected`).
    #[serde(default)]
    pub on_error: IndexMap<u16, CheckReaction>,
}

/// What a failed validate/keep-alive request means for the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckReaction {
    ReconnectRequired,
    MarkDisconnected,
}

/// `session:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    #[serde(default)]
    pub keep_alive: Option<CheckSpec>,
    #[serde(default)]
    pub error_detection: ErrorDetectionSpec,
    #[serde(default)]
    pub retry: RetrySpec,
}

/// `api:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    /// `{{api.base_url}}`: the private API root.
    pub base_url: String,
    /// `{{api.web_base_url}}`: the website (login pages).
    #[serde(default)]
    pub web_base_url: Option<String>,
    /// `{{api.upload_base_url}}`: where media uploads go.
    #[serde(default)]
    pub upload_base_url: Option<String>,
    /// Per-request timeout (`30s`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: IndexMap<String, TemplateText>,
    #[serde(default)]
    pub response_hooks: Vec<ResponseHookSpec>,
}

/// Stores a response header into the login's auth state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseHookSpec {
    pub header: String,
    /// `auth.<name>`.
    pub store_as: String,
}

/// One `actions.<name>:` entry. It is read part by part (each parameter,
/// the request, each step, the rest) so that one typo does not hide the
/// problems in the other parts.
#[derive(Debug, Clone, Default)]
pub struct ActionSpec {
    pub label: Option<String>,
    pub description: Option<String>,
    pub readonly: bool,
    pub params: IndexMap<String, ParamSpec>,
    /// Values rendered once per run, before any request, available as
    /// `{{vars.<name>}}` (one client_context shared by several fields, an upload id).
    pub vars: IndexMap<String, TemplateText>,
    /// A single request...
    pub rest: Option<RestSpec>,
    /// ...or several in order; each step's mapped result is `{{steps.<name>}}`
    /// for the later ones, and the last step's result is the action's.
    pub steps: Vec<StepSpec>,
}

const ACTION_HEAD_KEYS: &[&str] = &["label", "description", "readonly"];
const ACTION_PART_KEYS: &[&str] = &["params", "vars", "rest", "steps"];

/// The keys of an action besides `params`, `vars`, `rest` and `steps`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionHead {
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    readonly: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub name: String,
    pub rest: RestSpec,
}

/// A parameter definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    #[serde(rename = "type")]
    pub kind: ParamKind,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<Value>,
    /// Largest number, longest string or longest array accepted (larger is an error).
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub description: Option<String>,
    /// The allowed values of an `enum`.
    #[serde(default)]
    pub values: Vec<Value>,
    /// The element type of an `array`.
    #[serde(default)]
    pub items: Option<Box<ParamSpec>>,
    /// A regular expression a `string` must match (ids that go into URLs
    /// are digits only, so a value cannot reach another path).
    #[serde(default)]
    pub pattern: Option<ParamPattern>,
}

/// A compiled `pattern:`.
#[derive(Debug, Clone)]
pub struct ParamPattern(pub regex::Regex);

impl<'de> Deserialize<'de> for ParamPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        regex::Regex::new(&source)
            .map(ParamPattern)
            .map_err(|err| de::Error::custom(format!("invalid regular expression: {err}")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    String,
    Number,
    Integer,
    Boolean,
    Array,
    Object,
    Enum,
    /// Bytes: a path (CLI) or in-memory data (bridge); templates see
    /// `{name, size, mime_type}` and `body_file:` sends the bytes.
    File,
}

/// One HTTP request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestSpec {
    pub method: String,
    pub url: String,
    /// Query parameters; a field rendering to `null` is left out.
    #[serde(default)]
    pub params: IndexMap<String, TemplateText>,
    /// Extra headers for this request (on top of `api.headers`).
    #[serde(default)]
    pub headers: IndexMap<String, TemplateText>,
    /// Body fields; a field rendering to `null` is left out.
    #[serde(default)]
    pub body: Option<IndexMap<String, TemplateText>>,
    #[serde(default)]
    pub body_encoding: BodyEncoding,
    /// Send the bytes of this `file` parameter as the whole body.
    #[serde(default)]
    pub body_file: Option<String>,
    #[serde(default)]
    pub response: Option<ResponseSpec>,
    /// More response mappings over the same body; each result becomes the
    /// field of that name in the (object) result of `response:`. This is how
    /// a page carries both its items and its cursor.
    #[serde(default)]
    pub embed: IndexMap<String, ResponseSpec>,
    /// Whether repeating the request after a timeout or 5xx cannot act twice.
    /// Default: true for idempotent methods (GET).
    #[serde(default)]
    pub idempotent: Option<bool>,
    /// Send the request again while the platform's answer says "not yet".
    #[serde(default)]
    pub retry: Option<RetryWhenSpec>,
}

/// `retry:` of a request: repeat it while `when` holds for the answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryWhenSpec {
    /// An expression over the answer: `status` is the HTTP status, `.x` a field of the
    /// JSON body (null when it is not JSON); the request's own names can be read too.
    pub when: String,
    /// How many times the request is sent in all, the first included.
    pub attempts: u32,
    /// The wait before each repeat.
    pub delay: String,
}

/// How `body:` fields are encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyEncoding {
    /// `application/x-www-form-urlencoded`; non-string values as JSON text.
    #[default]
    Form,
    /// `application/json`, values keep their types.
    Json,
    /// Instagram's signed form: `signed_body=SIGNATURE.<JSON of the fields>`.
    Signed,
}

// ---------------------------------------------------------------------------
// Compiled spec: what the executor runs
// ---------------------------------------------------------------------------

/// A loaded, validated, compiled connector spec.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The file name used in messages.
    pub source: String,
    pub meta: SpecMeta,
    pub auth: AuthSpec,
    pub api: ApiSpec,
    pub headers: Vec<(HeaderName, Template)>,
    pub response_hooks: Vec<ResponseHook>,
    pub error_rules: ErrorRules,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub actions: IndexMap<String, Action>,
    /// `auth.validate`, as an action without parameters.
    pub validate: Option<Check>,
    /// `session.keep_alive`.
    pub keep_alive: Option<Check>,
    connect_steps: Vec<Value>,
}

/// A compiled response hook.
#[derive(Debug, Clone)]
pub struct ResponseHook {
    pub header: HeaderName,
    /// The name under `auth.` the value is stored as.
    pub auth_key: String,
}

/// A compiled validate / keep-alive request.
#[derive(Debug, Clone)]
pub struct Check {
    pub action: Action,
    pub interval: Option<Duration>,
    pub on_error: IndexMap<u16, CheckReaction>,
}

/// A compiled action.
#[derive(Debug, Clone)]
pub struct Action {
    pub name: String,
    pub readonly: bool,
    pub description: Option<String>,
    pub params: IndexMap<String, ParamSpec>,
    pub vars: Vec<(String, Template)>,
    pub steps: Vec<Step>,
}

/// One request of an action.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub request: Request,
}

/// A compiled request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: Template,
    pub query: Vec<(String, Template)>,
    pub headers: Vec<(HeaderName, Template)>,
    pub body: RequestBody,
    pub response: ResponseMapping,
    /// `embed:` mappings, by the result field they fill.
    pub embed: Vec<(String, ResponseMapping)>,
    /// The spec's `idempotent:`, when given.
    pub idempotent: Option<bool>,
    /// The spec's `retry:`, when given.
    pub retry: Option<RetryWhen>,
}

/// A compiled `retry:`: while `when` is true of an answer, the request is sent again after
/// `delay`, up to `attempts` sends in all.
#[derive(Debug, Clone)]
pub struct RetryWhen {
    pub when: Expr,
    pub attempts: u32,
    pub delay: Duration,
}

/// The most sends a `retry:` may ask for; more would hide a request that never succeeds.
const MAX_RETRY_WHEN_ATTEMPTS: u32 = 60;

#[derive(Debug, Clone)]
pub enum RequestBody {
    Empty,
    Fields {
        encoding: BodyEncoding,
        fields: Vec<(String, Template)>,
    },
    /// The bytes of a `file` parameter.
    File {
        param: String,
    },
}

impl Spec {
    /// Reads and loads a spec file.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let source = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Spec::parse(&source, &text),
            Err(err) => Err(SpecError {
                problems: vec![SpecProblem {
                    file: source,
                    scope: String::new(),
                    field: String::new(),
                    message: format!("cannot read the file: {err}"),
                }],
            }),
        }
    }

    /// Loads a spec from its text; `source` names it in messages.
    pub fn parse(source: &str, text: &str) -> Result<Spec, SpecError> {
        let mut problems = Problems {
            file: source.to_owned(),
            list: Vec::new(),
        };
        let spec = compile_document(&mut problems, text);
        match spec {
            Some(spec) if problems.list.is_empty() => Ok(spec),
            _ => Err(SpecError {
                problems: problems.list,
            }),
        }
    }

    /// Looks an action up by name.
    pub fn action(&self, name: &str) -> Option<&Action> {
        self.actions.get(name)
    }

    /// The `auth.connect.playwright.steps` with every string rendered as a
    /// template against `vars` (e.g. `{"api": {"web_base_url": ...}}`), so the
    /// browser goes to the same site the API calls do.
    pub fn render_connect_steps(&self, vars: &Value) -> Result<Value, super::expr::EvalError> {
        self.connect_steps
            .iter()
            .map(|step| render_strings(step, vars))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
    }
}

/// Renders every string inside `value` as a template.
fn render_strings(value: &Value, vars: &Value) -> Result<Value, super::expr::EvalError> {
    Ok(match value {
        Value::String(text) => match Template::parse(text) {
            Ok(template) => template.render(vars)?,
            // Checked at load time; a string that is not a template stays as written.
            Err(_) => value.clone(),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render_strings(item, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, item)| Ok((key.clone(), render_strings(item, vars)?)))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

/// Checks every string inside `value` parses as a template reading only `names`.
fn check_strings(problems: &mut Problems, scope: &str, field: &str, value: &Value, names: &Names) {
    match value {
        Value::String(text) => {
            problems.template(scope, field, text, names);
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                check_strings(problems, scope, &format!("{field}[{index}]"), item, names);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                check_strings(problems, scope, &format!("{field}.{key}"), item, names);
            }
        }
        _ => {}
    }
}

/// Parses a duration such as `500ms`, `30s`, `5m`, `4h`, `1d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let amount: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 30s, 5m or 4h"))?;
    let seconds = match unit.trim() {
        "ms" => amount / 1000.0,
        "" | "s" => amount,
        "m" => amount * 60.0,
        "h" => amount * 3600.0,
        "d" => amount * 86400.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{text}` (use ms, s, m, h or d)"
            ))
        }
    };
    Ok(Duration::from_secs_f64(seconds))
}

const TOP_LEVEL_SECTIONS: &[&str] = &["auth", "session", "api", "actions"];

fn compile_document(problems: &mut Problems, text: &str) -> Option<Spec> {
    let mut document: serde_norway::Value = match serde_norway::from_str(text) {
        Ok(document) => document,
        Err(err) => {
            problems.push("", "", format!("YAML syntax error: {err}"));
            return None;
        }
    };
    if let Err(err) = document.apply_merge() {
        problems.push("", "", format!("YAML merge (<<) error: {err}"));
        return None;
    }
    let serde_norway::Value::Mapping(top) = document else {
        problems.push(
            "",
            "",
            "the spec must be a YAML mapping with id, name, auth, api and actions",
        );
        return None;
    };

    let mut meta_fields = serde_norway::Mapping::new();
    let mut sections: IndexMap<String, serde_norway::Value> = IndexMap::new();
    for (key, value) in top {
        match key.as_str() {
            // `x-...` keys hold YAML anchors for reuse (`x-mappings:`), as in OpenAPI.
            Some(name) if name.starts_with("x-") => {}
            Some(name) if TOP_LEVEL_SECTIONS.contains(&name) => {
                sections.insert(name.to_owned(), value);
            }
            _ => {
                meta_fields.insert(key, value);
            }
        }
    }
    let meta: Option<SpecMeta> = problems.section("", serde_norway::Value::Mapping(meta_fields));

    let auth: Option<AuthSpec> = match sections.shift_remove("auth") {
        Some(value) => problems.section("auth", value),
        None => {
            problems.push("", "auth", "missing section");
            None
        }
    };
    let session: Option<SessionSpec> = match sections.shift_remove("session") {
        Some(value) => problems.section("session", value),
        None => Some(SessionSpec::default()),
    };
    let api: Option<ApiSpec> = match sections.shift_remove("api") {
        Some(value) => problems.section("api", value),
        None => {
            problems.push("", "api", "missing section");
            None
        }
    };
    // What response hooks store is readable as `auth.<name>`; unknown when `api:` did not load.
    let auth_state: Option<Vec<String>> = api.as_ref().map(|api| {
        api.response_hooks
            .iter()
            .filter_map(|hook| hook.store_as.strip_prefix("auth.").map(str::to_owned))
            .collect()
    });
    let credentials = Names::credentials(auth_state.as_deref());
    let actions = match sections.shift_remove("actions") {
        Some(serde_norway::Value::Mapping(actions)) => {
            compile_actions(problems, actions, &credentials)
        }
        Some(_) => {
            problems.push("", "actions", "must be a mapping of action name to action");
            IndexMap::new()
        }
        None => {
            problems.push("", "actions", "missing section");
            IndexMap::new()
        }
    };

    // Each section is checked even when another one failed to parse.
    let api_parts = api
        .as_ref()
        .map(|api| compile_api(problems, api, &credentials));
    let session_parts = session
        .as_ref()
        .map(|session| compile_session(problems, session, &credentials));
    let auth_parts = auth
        .as_ref()
        .map(|auth| compile_auth(problems, auth, &credentials));
    let (headers, response_hooks, timeout) = api_parts?;
    let (error_rules, retry, keep_alive) = session_parts?;
    let (validate, connect_steps) = auth_parts?;
    Some(Spec {
        source: problems.file.clone(),
        meta: meta?,
        auth: auth?,
        api: api?,
        headers,
        response_hooks,
        error_rules,
        retry,
        timeout,
        actions,
        validate,
        keep_alive,
        connect_steps,
    })
}

type ApiParts = (Vec<(HeaderName, Template)>, Vec<ResponseHook>, Duration);

fn compile_api(problems: &mut Problems, api: &ApiSpec, credentials: &Names) -> ApiParts {
    let api_scope = "api";
    // Shared by every action: only the login's credentials and the base URLs.
    let headers = compile_headers(problems, api_scope, "headers", &api.headers, credentials);
    let response_hooks = api
        .response_hooks
        .iter()
        .enumerate()
        .filter_map(|(index, hook)| {
            let field = format!("response_hooks[{index}]");
            let header = match HeaderName::try_from(hook.header.as_str()) {
                Ok(header) => header,
                Err(_) => {
                    problems.push(
                        api_scope,
                        format!("{field}.header"),
                        format!("`{}` is not a header name", hook.header),
                    );
                    return None;
                }
            };
            match hook.store_as.strip_prefix("auth.") {
                Some(key) if !key.is_empty() && key != "cookies" => Some(ResponseHook {
                    header,
                    auth_key: key.to_owned(),
                }),
                _ => {
                    problems.push(
                        api_scope,
                        format!("{field}.store_as"),
                        format!(
                            "`{}` must be `auth.<name>` (not auth.cookies)",
                            hook.store_as
                        ),
                    );
                    None
                }
            }
        })
        .collect();
    let timeout = match &api.timeout {
        Some(text) => parse_duration(text).unwrap_or_else(|message| {
            problems.push(api_scope, "timeout", message);
            DEFAULT_TIMEOUT
        }),
        None => DEFAULT_TIMEOUT,
    };
    for (field, url) in [
        ("web_base_url", &api.web_base_url),
        ("upload_base_url", &api.upload_base_url),
    ] {
        if let Some(url) = url {
            check_url(problems, api_scope, field, url);
        }
    }
    check_url(problems, api_scope, "base_url", &api.base_url);

    (headers, response_hooks, timeout)
}

fn compile_session(
    problems: &mut Problems,
    session: &SessionSpec,
    credentials: &Names,
) -> (ErrorRules, RetryPolicy, Option<Check>) {
    let error_rules = ErrorRules::compile(&session.error_detection).unwrap_or_else(|errors| {
        for (field, message) in errors {
            problems.push("session", format!("error_detection.{field}"), message);
        }
        ErrorRules::default()
    });
    let retry = RetryPolicy::from_spec(&session.retry).unwrap_or_else(|(field, message)| {
        problems.push("session", format!("retry.{field}"), message);
        RetryPolicy::default()
    });

    let keep_alive = session
        .keep_alive
        .as_ref()
        .and_then(|check| compile_check(problems, "session", "keep_alive", check, credentials));
    (error_rules, retry, keep_alive)
}

fn compile_auth(
    problems: &mut Problems,
    auth: &AuthSpec,
    credentials: &Names,
) -> (Option<Check>, Vec<Value>) {
    let validate = auth
        .validate
        .as_ref()
        .and_then(|check| compile_check(problems, "auth", "validate", check, credentials));
    let connect_steps = match &auth.connect {
        Some(connect) => {
            for (index, step) in connect.playwright.steps.iter().enumerate() {
                check_strings(
                    problems,
                    "auth",
                    &format!("connect.playwright.steps[{index}]"),
                    step,
                    &Names::api_only(),
                );
            }
            connect::check_steps(
                problems,
                "connect.playwright.steps",
                &connect.playwright.steps,
                &connect.playwright.inputs,
            );
            connect.playwright.steps.clone()
        }
        None => Vec::new(),
    };

    (validate, connect_steps)
}

fn check_url(problems: &mut Problems, scope: &str, field: &str, url: &str) {
    if let Err(err) = url::Url::parse(url) {
        problems.push(scope, field, format!("`{url}` is not a URL: {err}"));
    }
}

fn compile_headers(
    problems: &mut Problems,
    scope: &str,
    field: &str,
    sources: &IndexMap<String, TemplateText>,
    names: &Names,
) -> Vec<(HeaderName, Template)> {
    let mut headers = Vec::new();
    for (name, source) in sources {
        let header_field = format!("{field}.{name}");
        let Ok(header) = HeaderName::try_from(name.as_str()) else {
            problems.push(
                scope,
                header_field,
                format!("`{name}` is not a header name"),
            );
            continue;
        };
        if CLIENT_MANAGED_HEADERS.contains(&header.as_str()) {
            problems.push(
                scope,
                header_field,
                format!("`{name}` is set by the HTTP client (from the base URL and credentials); remove it"),
            );
            continue;
        }
        if let Some(template) = problems.template(scope, &header_field, &source.0, names) {
            headers.push((header, template));
        }
    }
    headers
}

fn compile_actions(
    problems: &mut Problems,
    actions: serde_norway::Mapping,
    credentials: &Names,
) -> IndexMap<String, Action> {
    let mut compiled = IndexMap::new();
    for (key, value) in actions {
        let Some(name) = key.as_str().map(str::to_owned) else {
            problems.push("", "actions", "action names must be strings");
            continue;
        };
        let scope = format!("action {name}");
        let before = problems.list.len();
        let Some(spec) = parse_action(problems, &scope, value) else {
            continue;
        };
        let parsed = problems.list.len() == before;
        // A part that did not parse is left out; the other parts are still
        // checked, and the action is dropped at the end.
        if let Some(action) = compile_action(problems, &scope, &name, &spec, parsed, credentials) {
            compiled.insert(name, action);
        }
    }
    compiled
}

/// Deserializes an action part by part (see [`ActionSpec`]).
fn parse_action(
    problems: &mut Problems,
    scope: &str,
    value: serde_norway::Value,
) -> Option<ActionSpec> {
    let serde_norway::Value::Mapping(mut fields) = value else {
        problems.push(scope, "", "an action must be a mapping");
        return None;
    };
    let params = match fields.remove("params") {
        None => IndexMap::new(),
        Some(serde_norway::Value::Mapping(params)) => params
            .into_iter()
            .filter_map(|(key, value)| {
                let Some(name) = key.as_str().map(str::to_owned) else {
                    problems.push(scope, "params", "parameter names must be strings");
                    return None;
                };
                let param =
                    problems.section_at::<ParamSpec>(scope, &format!("params.{name}"), value)?;
                Some((name, param))
            })
            .collect(),
        Some(other) => problems
            .section_at(scope, "params", other)
            .unwrap_or_default(),
    };
    let vars = fields
        .remove("vars")
        .and_then(|value| problems.section_at(scope, "vars", value))
        .unwrap_or_default();
    let rest = fields
        .remove("rest")
        .and_then(|value| problems.section_at::<RestSpec>(scope, "rest", value));
    let steps = match fields.remove("steps") {
        None => Vec::new(),
        Some(serde_norway::Value::Sequence(steps)) => steps
            .into_iter()
            .enumerate()
            .filter_map(|(index, value)| {
                problems.section_at::<StepSpec>(scope, &format!("steps[{index}]"), value)
            })
            .collect(),
        Some(other) => problems
            .section_at(scope, "steps", other)
            .unwrap_or_default(),
    };
    // Unknown keys are reported here, where every action key is known (the
    // head alone would list only its own in the message).
    fields.retain(|key, _| match key.as_str() {
        Some(known) if ACTION_HEAD_KEYS.contains(&known) => true,
        other => {
            let shown = other.map_or_else(|| format!("{key:?}"), str::to_owned);
            let expected = ACTION_HEAD_KEYS
                .iter()
                .chain(ACTION_PART_KEYS)
                .map(|k| format!("`{k}`"));
            problems.push(
                scope,
                shown.clone(),
                format!(
                    "unknown field `{shown}`, expected one of {}",
                    expected.collect::<Vec<_>>().join(", ")
                ),
            );
            false
        }
    });
    let head: ActionHead = problems
        .section(scope, serde_norway::Value::Mapping(fields))
        .unwrap_or_default();
    Some(ActionSpec {
        label: head.label,
        description: head.description,
        readonly: head.readonly,
        params,
        vars,
        rest,
        steps,
    })
}

fn compile_check(
    problems: &mut Problems,
    scope: &str,
    field: &str,
    check: &CheckSpec,
    credentials: &Names,
) -> Option<Check> {
    let scope = format!("{scope}.{field}");
    let interval = match &check.interval {
        Some(text) => match parse_duration(text) {
            Ok(interval) => Some(interval),
            Err(message) => {
                problems.push(&scope, "interval", message);
                None
            }
        },
        None => None,
    };
    let names = credentials
        .clone()
        .with_params(Vec::new())
        .with_vars(Vec::new())
        .with_steps(Vec::new());
    let request = compile_request(
        problems,
        &scope,
        "rest",
        &check.rest,
        &IndexMap::new(),
        &names,
    )?;
    Some(Check {
        action: Action {
            name: scope.clone(),
            readonly: true,
            description: None,
            params: IndexMap::new(),
            vars: Vec::new(),
            steps: vec![Step {
                name: "main".to_owned(),
                request,
            }],
        },
        interval,
        on_error: check.on_error.clone(),
    })
}

fn compile_action(
    problems: &mut Problems,
    scope: &str,
    name: &str,
    spec: &ActionSpec,
    parsed: bool,
    credentials: &Names,
) -> Option<Action> {
    let before = problems.list.len();
    for (param_name, param) in &spec.params {
        check_param(problems, scope, &format!("params.{param_name}"), param);
    }
    let mut with_params = credentials
        .clone()
        .with_params(spec.params.keys().cloned().collect())
        .with_steps(Vec::new());
    if !parsed {
        with_params = with_params.with_unchecked("params");
    }
    // Vars are rendered in order: each one reads only those before it.
    let mut vars = Vec::new();
    let mut var_names = Vec::new();
    for (var_name, source) in &spec.vars {
        let names = with_params.clone().with_vars(var_names.clone());
        if let Some(template) =
            problems.template(scope, &format!("vars.{var_name}"), &source.0, &names)
        {
            vars.push((var_name.clone(), template));
        }
        var_names.push(var_name.clone());
    }
    let mut with_vars = with_params.with_vars(var_names);
    if !parsed {
        with_vars = with_vars.with_unchecked("params").with_unchecked("vars");
    }

    let step_specs: Vec<(String, String, &RestSpec)> = match (&spec.rest, spec.steps.as_slice()) {
        (Some(rest), []) => vec![("main".to_owned(), "rest".to_owned(), rest)],
        (None, []) => {
            // A request that did not parse was reported already.
            if parsed {
                problems.push(
                    scope,
                    "",
                    "needs `rest:` (one request) or `steps:` (several)",
                );
            }
            Vec::new()
        }
        (Some(_), [_, ..]) => {
            problems.push(scope, "", "has both `rest:` and `steps:`; use one");
            Vec::new()
        }
        (None, steps) => steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                (
                    step.name.clone(),
                    format!("steps[{index}].rest"),
                    &step.rest,
                )
            })
            .collect(),
    };
    let mut steps: Vec<Step> = Vec::new();
    for (step_name, field, rest) in step_specs {
        if steps.iter().any(|step| step.name == step_name) {
            problems.push(
                scope,
                field.clone(),
                format!("step name `{step_name}` is used twice"),
            );
        }
        let earlier = steps.iter().map(|step| step.name.clone()).collect();
        let names = with_vars.clone().with_steps(earlier);
        if let Some(request) = compile_request(problems, scope, &field, rest, &spec.params, &names)
        {
            steps.push(Step {
                name: step_name,
                request,
            });
        }
    }
    (parsed && problems.list.len() == before).then(|| Action {
        name: name.to_owned(),
        readonly: spec.readonly,
        description: spec.description.clone(),
        params: spec.params.clone(),
        vars,
        steps,
    })
}

fn check_param(problems: &mut Problems, scope: &str, field: &str, param: &ParamSpec) {
    match param.kind {
        ParamKind::Enum if param.values.is_empty() => {
            problems.push(
                scope,
                format!("{field}.values"),
                "an enum needs a list of values",
            );
        }
        ParamKind::Enum => {}
        _ if !param.values.is_empty() => {
            problems.push(
                scope,
                format!("{field}.values"),
                "only an enum takes values",
            );
        }
        _ => {}
    }
    match (&param.items, param.kind) {
        (Some(items), ParamKind::Array) => {
            check_param(problems, scope, &format!("{field}.items"), items)
        }
        (Some(_), _) => problems.push(scope, format!("{field}.items"), "only an array takes items"),
        (None, _) => {}
    }
    // An enum without values was reported above: there is nothing to check its default against.
    let checkable = !(param.kind == ParamKind::Enum && param.values.is_empty());
    if let Some(default) = param.default.as_ref().filter(|_| checkable) {
        if param.kind == ParamKind::File {
            problems.push(
                scope,
                format!("{field}.default"),
                "a file parameter cannot have a default",
            );
        } else if let Err(message) = super::params::coerce(param, default) {
            problems.push(scope, format!("{field}.default"), message);
        }
    }
    if param.pattern.is_some() && param.kind != ParamKind::String {
        problems.push(
            scope,
            format!("{field}.pattern"),
            "pattern applies to strings only",
        );
    }
    if param.max.is_some()
        && !matches!(
            param.kind,
            ParamKind::Number | ParamKind::Integer | ParamKind::String | ParamKind::Array
        )
    {
        problems.push(
            scope,
            format!("{field}.max"),
            "max applies to numbers, strings and arrays only",
        );
    }
}

fn compile_request(
    problems: &mut Problems,
    scope: &str,
    field: &str,
    rest: &RestSpec,
    params: &IndexMap<String, ParamSpec>,
    names: &Names,
) -> Option<Request> {
    let before = problems.list.len();
    let method = match Method::from_bytes(rest.method.to_ascii_uppercase().as_bytes()) {
        Ok(method) => method,
        Err(_) => {
            problems.push(
                scope,
                format!("{field}.method"),
                format!("`{}` is not an HTTP method", rest.method),
            );
            Method::GET
        }
    };
    let url = problems.template(scope, &format!("{field}.url"), &rest.url, names);
    let query = problems.templates(scope, &format!("{field}.params"), &rest.params, names);
    let headers = compile_headers(
        problems,
        scope,
        &format!("{field}.headers"),
        &rest.headers,
        names,
    );
    let body = match (&rest.body, &rest.body_file) {
        (Some(_), Some(_)) => {
            problems.push(
                scope,
                format!("{field}.body_file"),
                "a request has either `body:` fields or `body_file:`",
            );
            RequestBody::Empty
        }
        (Some(fields), None) => RequestBody::Fields {
            encoding: rest.body_encoding,
            fields: problems.templates(scope, &format!("{field}.body"), fields, names),
        },
        (None, Some(param)) => {
            match params.get(param) {
                Some(spec) if spec.kind == ParamKind::File => {}
                Some(_) => problems.push(
                    scope,
                    format!("{field}.body_file"),
                    format!("parameter `{param}` is not of type file"),
                ),
                None => problems.push(
                    scope,
                    format!("{field}.body_file"),
                    format!("no parameter named `{param}`"),
                ),
            }
            RequestBody::File {
                param: param.clone(),
            }
        }
        (None, None) => RequestBody::Empty,
    };
    let empty_response = ResponseSpec {
        root: None,
        context: IndexMap::new(),
        mapping: None,
    };
    let mut compile_mapping =
        |spec_field: String, spec: &ResponseSpec| match ResponseMapping::compile(spec) {
            Ok(response) => {
                names.check_response(problems, scope, &spec_field, &response);
                Some(response)
            }
            Err(errors) => {
                for error in errors {
                    problems.push(
                        scope,
                        format!("{spec_field}.{}", error.field),
                        error.message,
                    );
                }
                None
            }
        };
    let response = compile_mapping(
        format!("{field}.response"),
        rest.response.as_ref().unwrap_or(&empty_response),
    );
    let embed: Vec<(String, ResponseMapping)> = rest
        .embed
        .iter()
        .filter_map(|(name, spec)| {
            compile_mapping(format!("{field}.embed.{name}"), spec)
                .map(|mapping| (name.clone(), mapping))
        })
        .collect();
    let retry = rest.retry.as_ref().and_then(|spec| {
        compile_retry_when(problems, scope, &format!("{field}.retry"), spec, names)
    });
    if problems.list.len() != before {
        return None;
    }
    Some(Request {
        method,
        url: url?,
        query,
        headers,
        body,
        response: response?,
        embed,
        idempotent: rest.idempotent,
        retry,
    })
}

fn compile_retry_when(
    problems: &mut Problems,
    scope: &str,
    field: &str,
    spec: &RetryWhenSpec,
    names: &Names,
) -> Option<RetryWhen> {
    let when = match expr::parse(&spec.when) {
        Ok(when) => {
            names.clone().with_status().check_when(
                problems,
                scope,
                &format!("{field}.when"),
                &when,
            );
            Some(when)
        }
        Err(err) => {
            problems.push(scope, format!("{field}.when"), err.to_string());
            None
        }
    };
    if !(1..=MAX_RETRY_WHEN_ATTEMPTS).contains(&spec.attempts) {
        problems.push(
            scope,
            format!("{field}.attempts"),
            format!("must be between 1 and {MAX_RETRY_WHEN_ATTEMPTS}"),
        );
    }
    let delay = parse_duration(&spec.delay)
        .map_err(|message| problems.push(scope, format!("{field}.delay"), message))
        .ok();
    Some(RetryWhen {
        when: when?,
        attempts: spec.attempts,
        delay: delay?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(
            parse_duration("4 hours"),
            Err("unknown duration unit `hours` in `4 hours` (use ms, s, m, h or d)".to_owned())
        );
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn a_minimal_spec_loads_and_sections_are_optional() {
        let spec = Spec::parse(
            "mini.yaml",
            r#"
id: mini
name: Mini
auth: { type: cookies }
api: { base_url: "http://127.0.0.1:1/api" }
actions:
  ping:
    rest: { method: get, url: "{{api.base_url}}/ping" }
"#,
        )
        .unwrap();
        assert_eq!(spec.actions["ping"].steps[0].request.method, Method::GET);
        assert_eq!(spec.retry, RetryPolicy::default());
        assert_eq!(spec.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn a_document_that_is_not_a_mapping_is_refused() {
        let err = Spec::parse("list.yaml", "- a\n- b\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "list.yaml: the spec must be a YAML mapping with id, name, auth, api and actions"
        );
        let err = Spec::parse("empty.yaml", "id: x\nname: X\n").unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("empty.yaml: auth: missing section"),
            "{shown}"
        );
        assert!(
            shown.contains("empty.yaml: actions: missing section"),
            "{shown}"
        );
    }
}
