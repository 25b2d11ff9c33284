//! The executor: runs a spec's action over HTTP. It validates parameters,
//! renders the URL, query, headers and body from templates, injects the
//! login's cookies, sends with a timeout and bounded retries, applies
//! response hooks, classifies errors and maps the response.
//!
//! Retries: rate limits (429 and spec-detected) are retried for every
//! request, since the platform refused it before doing anything. Transient
//! failures (5xx, timeouts, broken connections) are retried only when
//! repeating the request cannot write twice: idempotent methods (GET) and
//! requests that never reached the server (connection refused). A write that
//! may have happened is never repeated here (Instagram does not promise to
//! dedupe on `client_context`): the caller decides, after looking. A request's
//! `idempotent:` key overrides the first rule. Separately, a request's
//! `retry:` rule sends it again while the platform answers "not yet".
//!
//! A connector with a request budget ([`Connector::with_budget`]) takes a
//! token before every request it sends, and instead of retrying a rate limit
//! or an action block it starts the budget's cool-down and fails with
//! [`ConnectorError::CoolingDown`]: it never hammers on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::{Client, Method, Url};
use serde_json::{json, Map, Value};

use super::auth::Credentials;
use super::budget::{CoolDown, CoolDownCause, RequestBudget, RequestKind};
use super::expr::Scope;
use super::params;
use super::session::{classify, ConnectorError, RetryPolicy};
use super::spec::{
    Action, ApiSpec, BodyEncoding, ParamKind, Request, RequestBody, RetryWhen, Spec, Step,
};
use super::template::Template;

/// The result of an action: the normalized JSON (the model's shapes) and the
/// platform's raw response body (of the last request, for multi-step actions).
#[derive(Debug, Clone, PartialEq)]
pub struct ActionOutput {
    pub normalized: Value,
    pub raw: Value,
}

/// Where requests go. The spec's URLs are defaults; overriding them points
/// the same spec at the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrls {
    /// `{{api.base_url}}`, e.g. `https://i.instagram.com/api/v1`.
    pub api: String,
    /// `{{api.web_base_url}}`, e.g. `https://www.instagram.com`.
    pub web: String,
    /// `{{api.upload_base_url}}`, e.g. `https://i.instagram.com`.
    pub upload: String,
}

impl BaseUrls {
    /// The spec's own URLs; missing web/upload URLs default to the API's origin.
    pub fn from_spec(api: &ApiSpec) -> BaseUrls {
        let origin = origin_of(&api.base_url);
        BaseUrls {
            api: trim_slash(&api.base_url),
            web: api
                .web_base_url
                .as_deref()
                .map(trim_slash)
                .unwrap_or_else(|| origin.clone()),
            upload: api
                .upload_base_url
                .as_deref()
                .map(trim_slash)
                .unwrap_or(origin),
        }
    }

    /// The spec's URLs with overrides; when only the API URL is overridden
    /// the web and upload URLs follow it to its origin (one server, as the
    /// simulator is).
    pub fn with_overrides(
        spec: &ApiSpec,
        api: Option<&str>,
        web: Option<&str>,
        upload: Option<&str>,
    ) -> BaseUrls {
        let defaults = BaseUrls::from_spec(spec);
        let api_origin = api.map(origin_of);
        BaseUrls {
            api: api.map(trim_slash).unwrap_or(defaults.api),
            web: web
                .map(trim_slash)
                .or_else(|| api_origin.clone())
                .unwrap_or(defaults.web),
            upload: upload
                .map(trim_slash)
                .or(api_origin)
                .unwrap_or(defaults.upload),
        }
    }

    /// `api` as templates see it.
    pub fn vars(&self) -> Value {
        json!({ "base_url": self.api, "web_base_url": self.web, "upload_base_url": self.upload })
    }
}

fn trim_slash(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

fn origin_of(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) => parsed.origin().ascii_serialization(),
        Err(_) => trim_slash(url),
    }
}

/// In-memory bytes for a `file` parameter.
#[derive(Clone, PartialEq, Eq)]
pub struct FileData {
    pub name: String,
    pub mime_type: String,
    pub bytes: Bytes,
}

impl std::fmt::Debug for FileData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileData")
            .field("name", &self.name)
            .field("mime_type", &self.mime_type)
            .field("size", &self.bytes.len())
            .finish()
    }
}

impl FileData {
    /// What templates see as `params.<file>`.
    fn vars(&self) -> Value {
        json!({ "name": self.name, "size": self.bytes.len(), "mime_type": self.mime_type })
    }
}

/// A loaded spec bound to base URLs and an HTTP client.
#[derive(Debug, Clone)]
pub struct Connector {
    spec: Arc<Spec>,
    base_urls: BaseUrls,
    client: Client,
    retry: RetryPolicy,
    timeout: Duration,
    /// The login's request budget, when the caller attached one.
    budget: Option<Arc<RequestBudget>>,
}

/// A request rendered and ready to send (possibly several times).
struct PreparedRequest {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Bytes>,
    /// Whether sending it again cannot perform a write twice.
    retry_safe: bool,
}

/// One failed attempt, whether the request may have reached the server, and whether the
/// request's `retry:` rule held for the answer (the platform said "not yet").
struct AttemptFailure {
    error: ConnectorError,
    reached_server: bool,
    not_yet: bool,
}

impl Connector {
    /// A connector for `spec`, sending to `base_urls`, with the spec's retry
    /// policy and timeout.
    pub fn new(spec: Spec, base_urls: BaseUrls) -> Connector {
        let client = Client::builder()
            // A redirect from the API means a login or challenge page: surface it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Connector {
            retry: spec.retry,
            timeout: spec.timeout,
            spec: Arc::new(spec),
            base_urls,
            client,
            budget: None,
        }
    }

    /// Sends every request through `budget` (one login's: the clones of one
    /// login share it).
    pub fn with_budget(mut self, budget: Arc<RequestBudget>) -> Connector {
        self.budget = Some(budget);
        self
    }

    pub fn budget(&self) -> Option<&Arc<RequestBudget>> {
        self.budget.as_ref()
    }

    /// Replaces the retry policy (tests use short waits).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Connector {
        self.retry = retry;
        self
    }

    /// Replaces the per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Connector {
        self.timeout = timeout;
        self
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn base_urls(&self) -> &BaseUrls {
        &self.base_urls
    }

    /// The platform's display name, used in error messages.
    fn platform(&self) -> &str {
        &self.spec.meta.name
    }

    /// Runs the named action with `params` (an action with `file` parameters
    /// needs [`Connector::execute_with_files`]).
    pub async fn execute(
        &self,
        action: &str,
        params: Value,
        creds: &mut Credentials,
    ) -> Result<ActionOutput, ConnectorError> {
        self.execute_with_files(action, params, HashMap::new(), creds)
            .await
    }

    /// Runs the named action; `files` supplies `file` parameters from memory.
    pub async fn execute_with_files(
        &self,
        action: &str,
        params: Value,
        files: HashMap<String, FileData>,
        creds: &mut Credentials,
    ) -> Result<ActionOutput, ConnectorError> {
        let spec = Arc::clone(&self.spec);
        let action = spec
            .action(action)
            .ok_or_else(|| ConnectorError::UnknownAction {
                name: action.to_owned(),
            })?;
        self.run_action(action, params, files, creds).await
    }

    /// Runs `auth.validate` (the current user), when the spec has it.
    pub async fn validate(&self, creds: &mut Credentials) -> Result<Value, ConnectorError> {
        let spec = Arc::clone(&self.spec);
        match &spec.validate {
            Some(check) => Ok(self
                .run_action(&check.action, Value::Null, HashMap::new(), creds)
                .await?
                .normalized),
            None => Ok(Value::Null),
        }
    }

    /// Runs a compiled action (also used for validate and keep-alive).
    pub async fn run_action(
        &self,
        action: &Action,
        params: Value,
        files: HashMap<String, FileData>,
        creds: &mut Credentials,
    ) -> Result<ActionOutput, ConnectorError> {
        let invalid = |message: String| ConnectorError::InvalidParams {
            action: action.name.clone(),
            message,
        };
        // In-memory files stand in for their parameters (replaced by metadata below).
        let placeholders = files
            .iter()
            .map(|(name, file)| (name.clone(), Value::String(file.name.clone())));
        let params = match params {
            Value::Null if files.is_empty() => Value::Null,
            Value::Null => Value::Object(placeholders.collect()),
            Value::Object(mut given) => {
                given.extend(placeholders);
                Value::Object(given)
            }
            other => other,
        };
        let mut params = params::validate(&action.params, &params).map_err(invalid)?;
        resolve_files(action, &mut params, &files).map_err(invalid)?;
        creds
            .require_cookies(&self.spec.auth.cookies)
            .map_err(|err| ConnectorError::IncompleteLogin {
                message: err.to_string(),
            })?;

        let mut vars = json!({
            "params": params,
            "auth": creds.auth_vars(),
            "device": creds.device_vars(),
            "api": self.base_urls.vars(),
            "vars": {},
            "steps": {},
        });
        for (name, template) in &action.vars {
            let value = self.render(action, &format!("vars.{name}"), template, &vars)?;
            vars["vars"][name] = value;
        }

        let mut output = ActionOutput {
            normalized: Value::Null,
            raw: Value::Null,
        };
        for step in &action.steps {
            vars["auth"] = creds.auth_vars();
            let prepared = self.prepare(action, step, &vars, &files, creds)?;
            let not_yet = step.request.retry.as_ref().map(|rule| (rule, &vars));
            let raw = self
                .send_with_retries(action, &prepared, not_yet, creds)
                .await?;
            vars["auth"] = creds.auth_vars();
            let normalized = map_response(action, &step.request, &raw, &vars)?;
            vars["steps"][&step.name] = normalized.clone();
            output = ActionOutput { normalized, raw };
        }
        Ok(output)
    }

    fn render(
        &self,
        action: &Action,
        field: &str,
        template: &Template,
        vars: &Value,
    ) -> Result<Value, ConnectorError> {
        template.render(vars).map_err(|err| ConnectorError::Spec {
            action: action.name.clone(),
            message: format!("{field}: {err}"),
        })
    }

    fn prepare(
        &self,
        action: &Action,
        step: &Step,
        vars: &Value,
        files: &HashMap<String, FileData>,
        creds: &Credentials,
    ) -> Result<PreparedRequest, ConnectorError> {
        let request = &step.request;
        let spec_error = |message: String| ConnectorError::Spec {
            action: action.name.clone(),
            message,
        };
        let url_text =
            value_text(&self.render(action, "url", &request.url, vars)?).unwrap_or_default();
        let mut url = Url::parse(&url_text)
            .map_err(|err| spec_error(format!("url is not a valid URL: {err}")))?;
        for (name, template) in &request.query {
            let value = self.render(action, &format!("params.{name}"), template, vars)?;
            if let Some(text) = value_text(&value) {
                url.query_pairs_mut().append_pair(name, &text);
            }
        }

        let mut headers = HeaderMap::new();
        for (name, template) in self.spec.headers.iter().chain(&request.headers) {
            let value = self.render(action, &format!("headers.{name}"), template, vars)?;
            let Some(text) = value_text(&value) else {
                headers.remove(name);
                continue;
            };
            // The message names the header only: its value may be a credential.
            let value = HeaderValue::from_str(&text).map_err(|_| {
                spec_error(format!(
                    "header {name} rendered to a value that cannot be sent"
                ))
            })?;
            headers.insert(name.clone(), value);
        }
        if !creds.cookies.is_empty() {
            // A bad cookie is a broken login, not a spec problem; its value is not shown.
            let value = HeaderValue::from_str(&creds.cookie_header()).map_err(|_| {
                ConnectorError::IncompleteLogin {
                    message: "a cookie value contains characters that cannot be sent".to_owned(),
                }
            })?;
            headers.insert(COOKIE, value);
        }

        let (body, content_type) = match &request.body {
            RequestBody::Empty => (None, None),
            RequestBody::File { param } => {
                let file = files
                    .get(param)
                    .ok_or_else(|| spec_error(format!("body_file `{param}` was not given")))?;
                (Some(file.bytes.clone()), Some("application/octet-stream"))
            }
            RequestBody::Fields { encoding, fields } => {
                let mut rendered = Map::new();
                for (name, template) in fields {
                    let value = self.render(action, &format!("body.{name}"), template, vars)?;
                    if !value.is_null() {
                        rendered.insert(name.clone(), value);
                    }
                }
                encode_body(*encoding, rendered)
            }
        };
        if let Some(content_type) = content_type {
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            }
        }
        Ok(PreparedRequest {
            retry_safe: request.idempotent.unwrap_or(request.method.is_idempotent()),
            method: request.method.clone(),
            url,
            headers,
            body,
        })
    }

    /// Sends until an answer is accepted: repeats while the `retry:` rule (`not_yet`, with
    /// the vars it is evaluated in) holds, and after failures the retry policy allows.
    async fn send_with_retries(
        &self,
        action: &Action,
        request: &PreparedRequest,
        not_yet: Option<(&RetryWhen, &Value)>,
        creds: &mut Credentials,
    ) -> Result<Value, ConnectorError> {
        let mut attempt = 1;
        let mut sends = 1;
        let mut waited = Duration::ZERO;
        let kind = if action.readonly {
            RequestKind::Read
        } else {
            RequestKind::Write
        };
        loop {
            if let Some(budget) = &self.budget {
                budget
                    .admit(kind)
                    .await
                    .map_err(|cool_down| self.cooling_down(cool_down))?;
            }
            let failure = match self.send_once(action, request, not_yet, creds).await {
                Ok(body) => return Ok(body),
                Err(failure) => failure,
            };
            if let Some(budget) = &self.budget {
                let refusal = match &failure.error {
                    ConnectorError::RateLimited { retry_after, .. } => {
                        Some((CoolDownCause::RateLimited, *retry_after))
                    }
                    ConnectorError::ActionBlocked { .. } => {
                        Some((CoolDownCause::ActionBlocked, None))
                    }
                    _ => None,
                };
                if let Some((cause, retry_after)) = refusal {
                    let cool_down = budget.record_refusal(cause, retry_after);
                    tracing::warn!(
                        action = %action.name,
                        error = %failure.error,
                        cool_down_s = cool_down.remaining.as_secs(),
                        repeat = cool_down.repeat,
                        "the platform asked to slow down; requests paused"
                    );
                    return Err(self.cooling_down(cool_down));
                }
            }
            if failure.not_yet {
                match not_yet {
                    Some((rule, _)) if sends < rule.attempts => {
                        tracing::debug!(
                            action = %action.name,
                            sends,
                            delay_ms = rule.delay.as_millis() as u64,
                            "the platform said not yet; sending again"
                        );
                        tokio::time::sleep(rule.delay).await;
                        sends += 1;
                        continue;
                    }
                    _ => return Err(failure.error),
                }
            }
            let retry_safe = request.retry_safe || !failure.reached_server;
            match self
                .retry
                .delay_before_retry(&failure.error, attempt, waited, retry_safe)
            {
                Some(delay) => {
                    tracing::warn!(
                        action = %action.name,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        error = %failure.error,
                        "retrying request"
                    );
                    tokio::time::sleep(delay).await;
                    waited += delay;
                    attempt += 1;
                }
                None => return Err(failure.error),
            }
        }
    }

    async fn send_once(
        &self,
        action: &Action,
        request: &PreparedRequest,
        not_yet: Option<(&RetryWhen, &Value)>,
        creds: &mut Credentials,
    ) -> Result<Value, AttemptFailure> {
        let started = Instant::now();
        let mut builder = self
            .client
            .request(request.method.clone(), request.url.clone())
            .headers(request.headers.clone())
            .timeout(self.timeout);
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let response = builder
            .send()
            .await
            .map_err(|err| self.transport_failure(err))?;
        let status = response.status();
        let headers = response.headers().clone();
        for hook in &self.spec.response_hooks {
            if let Some(value) = headers
                .get(&hook.header)
                .and_then(|value| value.to_str().ok())
            {
                creds.store_state(&hook.auth_key, value.to_owned());
            }
        }
        for cookie in headers.get_all(SET_COOKIE) {
            if let Ok(cookie) = cookie.to_str() {
                creds.store_set_cookie(cookie);
            }
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|err| self.transport_failure(err))?;
        tracing::debug!(
            action = %action.name,
            method = %request.method,
            path = request.url.path(),
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "platform request"
        );
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        let text = String::from_utf8_lossy(&bytes);
        let holds =
            match not_yet {
                Some((rule, vars)) => rule_holds(rule, vars, status.as_u16(), json.as_ref())
                    .map_err(|error| AttemptFailure {
                        error: ConnectorError::Spec {
                            action: action.name.clone(),
                            message: format!("retry.when: {error}"),
                        },
                        reached_server: true,
                        not_yet: false,
                    })?,
                None => false,
            };
        classify(
            &self.spec.error_rules,
            self.platform(),
            status,
            &headers,
            &text,
            json.as_ref(),
        )
        .map_err(|error| AttemptFailure {
            error,
            reached_server: true,
            not_yet: holds,
        })?;
        if holds {
            // A success that still says "not yet": sent again, or a failure in the end.
            return Err(AttemptFailure {
                error: ConnectorError::Platform {
                    platform: self.platform().to_owned(),
                    status: status.as_u16(),
                    message: "the platform kept answering that it was not ready".to_owned(),
                },
                reached_server: true,
                not_yet: true,
            });
        }
        json.ok_or_else(|| AttemptFailure {
            error: ConnectorError::MalformedResponse {
                action: action.name.clone(),
                message: format!(
                    "HTTP {} with a body that is not JSON ({} bytes of {})",
                    status.as_u16(),
                    bytes.len(),
                    headers
                        .get(CONTENT_TYPE)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("unknown type")
                ),
            },
            reached_server: true,
            not_yet: false,
        })
    }

    fn cooling_down(&self, cool_down: CoolDown) -> ConnectorError {
        ConnectorError::CoolingDown {
            platform: self.platform().to_owned(),
            remaining: cool_down.remaining,
            cause: cool_down.cause,
        }
    }

    /// A transport error as a transient failure. The URL is left out of the
    /// message: it is noise to a user, and the text must stay free of secrets.
    fn transport_failure(&self, err: reqwest::Error) -> AttemptFailure {
        let reached_server = !err.is_connect();
        let message = if err.is_timeout() {
            format!("no answer within {} ms", self.timeout.as_millis())
        } else if err.is_connect() {
            "could not connect".to_owned()
        } else {
            let err = err.without_url();
            match std::error::Error::source(&err) {
                Some(source) => format!("{err}: {source}"),
                None => err.to_string(),
            }
        };
        AttemptFailure {
            error: ConnectorError::Transient {
                platform: self.platform().to_owned(),
                message,
            },
            reached_server,
            not_yet: false,
        }
    }
}

/// Whether a `retry:` rule's `when` holds for an answer: evaluated with the body as the
/// current value and `status` added to the request's vars.
fn rule_holds(
    rule: &RetryWhen,
    vars: &Value,
    status: u16,
    body: Option<&Value>,
) -> Result<bool, super::expr::EvalError> {
    let mut vars = vars.clone();
    vars["status"] = json!(status);
    let held = rule.when.eval(&Scope {
        current: body.unwrap_or(&Value::Null),
        vars: &vars,
    })?;
    Ok(super::expr::truthy(&held))
}

/// Applies a request's `response:` and `embed:` mappings to a response body.
fn map_response(
    action: &Action,
    request: &Request,
    raw: &Value,
    vars: &Value,
) -> Result<Value, ConnectorError> {
    let malformed = |message: String| ConnectorError::MalformedResponse {
        action: action.name.clone(),
        message,
    };
    let mut normalized = request
        .response
        .apply(raw, vars)
        .map_err(|err| malformed(err.to_string()))?;
    for (field, mapping) in &request.embed {
        let value = mapping
            .apply(raw, vars)
            .map_err(|err| malformed(format!("embed.{field}: {err}")))?;
        match &mut normalized {
            Value::Object(result) => {
                result.insert(field.clone(), value);
            }
            _ => {
                return Err(malformed(format!(
                    "embed.{field}: the response mapping did not produce an object"
                )))
            }
        }
    }
    Ok(normalized)
}

/// Replaces each `file` parameter in `params` by its metadata. Files come
/// only as bytes in `files`: a value given in their place (a path, say) is
/// refused, never read from this machine's disk, since parameters may come
/// from other people (the bridge's users).
fn resolve_files(
    action: &Action,
    params: &mut Value,
    files: &HashMap<String, FileData>,
) -> Result<(), String> {
    for (name, definition) in &action.params {
        if definition.kind != ParamKind::File {
            continue;
        }
        match files.get(name) {
            Some(file) => params[name] = file.vars(),
            None if params[name].is_null() => {}
            None => {
                return Err(format!(
                    "`{name}` is a file: its bytes must be handed over, not a value"
                ))
            }
        }
    }
    Ok(())
}

/// A value as it goes into a query string, form field or header; `None` for null.
fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number.to_string()),
        other => Some(other.to_string()),
    }
}

fn encode_body(
    encoding: BodyEncoding,
    fields: Map<String, Value>,
) -> (Option<Bytes>, Option<&'static str>) {
    const FORM: &str = "application/x-www-form-urlencoded; charset=UTF-8";
    match encoding {
        BodyEncoding::Json => (
            Some(Bytes::from(Value::Object(fields).to_string())),
            Some("application/json"),
        ),
        BodyEncoding::Form => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in &fields {
                form.append_pair(name, &value_text(value).unwrap_or_default());
            }
            (Some(Bytes::from(form.finish())), Some(FORM))
        }
        BodyEncoding::Signed => {
            let signed = format!("SIGNATURE.{}", Value::Object(fields));
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("signed_body", &signed)
                .finish();
            (Some(Bytes::from(body)), Some(FORM))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overriding_the_api_url_moves_web_and_upload_to_its_origin() {
        let api: ApiSpec = serde_norway::from_str(
            "base_url: https://i.instagram.com/api/v1/\nweb_base_url: https://www.instagram.com\n",
        )
        .unwrap();
        assert_eq!(
            BaseUrls::from_spec(&api),
            BaseUrls {
                api: "https://i.instagram.com/api/v1".into(),
                web: "https://www.instagram.com".into(),
                upload: "https://i.instagram.com".into(),
            }
        );
        assert_eq!(
            BaseUrls::with_overrides(&api, Some("http://127.0.0.1:9000/api/v1"), None, None),
            BaseUrls {
                api: "http://127.0.0.1:9000/api/v1".into(),
                web: "http://127.0.0.1:9000".into(),
                upload: "http://127.0.0.1:9000".into(),
            }
        );
    }

    #[test]
    fn bodies_are_encoded_as_asked() {
        let fields: Map<String, Value> = serde_json::from_value(json!({
            "thread_ids": "[340282366841710300949128137443944319108]",
            "text": "héllo & bye",
            "user_ids": ["1", "2"],
            "count": 3
        }))
        .unwrap();
        let (form, _) = encode_body(BodyEncoding::Form, fields.clone());
        assert_eq!(
            form.unwrap(),
            "thread_ids=%5B340282366841710300949128137443944319108%5D&text=h%C3%A9llo+%26+bye&user_ids=%5B%221%22%2C%222%22%5D&count=3"
        );
        let (signed, _) = encode_body(BodyEncoding::Signed, fields.clone());
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&signed.unwrap())
            .into_owned()
            .collect();
        assert_eq!(pairs[0].0, "signed_body");
        let json_text = pairs[0].1.strip_prefix("SIGNATURE.").unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(json_text).unwrap(),
            Value::Object(fields.clone())
        );
        let (json_body, content_type) = encode_body(BodyEncoding::Json, fields);
        assert_eq!(content_type, Some("application/json"));
        assert_eq!(
            serde_json::from_slice::<Value>(&json_body.unwrap()).unwrap()["count"],
            json!(3)
        );
    }
}
