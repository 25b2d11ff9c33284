//! Session handling: turning platform responses into typed errors
//! (`session.error_detection`), the retry policy for rate limits and transient
//! failures, and the keep-alive check the bridge schedules.

use std::time::Duration;

use indexmap::IndexMap;
use regex::Regex;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::auth::Credentials;
use super::budget::CoolDownCause;
use super::http::Connector;
use super::spec::{parse_duration, CheckReaction};

/// What a matched status code or body pattern means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The login is gone: the user must log in again.
    SessionExpired,
    /// The platform wants the user to prove who they are (a challenge they can pass).
    ChallengeRequired,
    /// The account is locked behind a checkpoint the user must clear in the app or
    /// browser before any login works.
    CheckpointRequired,
    /// Too many requests: wait and retry.
    RateLimited,
    /// The account may not do this for a while (Instagram's feedback_required).
    ActionBlocked,
    NotFound,
    /// Worth retrying later (5xx, timeouts).
    Transient,
    /// Any other refusal.
    PlatformError,
}

/// `session.error_detection:` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetectionSpec {
    /// HTTP status → kind, used when no body pattern matched.
    #[serde(default)]
    pub status_codes: IndexMap<u16, ErrorKind>,
    /// Regular expressions over the body of a failed response, first match wins.
    #[serde(default)]
    pub response_patterns: Vec<ResponsePatternSpec>,
    /// JSON pointers into the body of a `session_expired` failure whose values are kept
    /// in the error (why the session ended, for the user-facing text).
    #[serde(default)]
    pub expired_detail: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsePatternSpec {
    pub pattern: String,
    pub error: ErrorKind,
}

/// Compiled error detection rules.
#[derive(Debug, Clone, Default)]
pub struct ErrorRules {
    status_codes: IndexMap<u16, ErrorKind>,
    patterns: Vec<(Regex, ErrorKind)>,
    expired_detail: Vec<String>,
}

impl ErrorRules {
    /// Compiles the patterns; every bad one is returned as (field, message).
    pub fn compile(spec: &ErrorDetectionSpec) -> Result<ErrorRules, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut patterns = Vec::new();
        for (index, rule) in spec.response_patterns.iter().enumerate() {
            match Regex::new(&rule.pattern) {
                Ok(regex) => patterns.push((regex, rule.error)),
                Err(err) => problems.push((
                    format!("response_patterns[{index}].pattern"),
                    format!("invalid regular expression: {err}"),
                )),
            }
        }
        for (index, pointer) in spec.expired_detail.iter().enumerate() {
            if !pointer.starts_with('/') {
                problems.push((
                    format!("expired_detail[{index}]"),
                    "a JSON pointer starts with `/`".to_owned(),
                ));
            }
        }
        for status in spec.status_codes.keys() {
            if StatusCode::from_u16(*status).is_err() {
                problems.push((
                    format!("status_codes.{status}"),
                    "not an HTTP status code".to_owned(),
                ));
            }
        }
        if problems.is_empty() {
            Ok(ErrorRules {
                status_codes: spec.status_codes.clone(),
                patterns,
                expired_detail: spec.expired_detail.clone(),
            })
        } else {
            Err(problems)
        }
    }
}

/// Why running an action failed. Display strings are meant for the user and
/// never contain credentials or response bodies.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectorError {
    #[error("{platform} asks you to log in again (the session has expired or was logged out{})", detail.as_ref().map(|detail| format!("; {detail}")).unwrap_or_default())]
    SessionExpired {
        platform: String,
        status: u16,
        /// The platform's reason, from `error_detection.expired_detail`.
        detail: Option<String>,
    },
    #[error("{platform} wants to confirm it's you: complete the security check in the app or browser, then log in again")]
    ChallengeRequired { platform: String, status: u16 },
    #[error("{platform} has locked the account behind a checkpoint: open the app or website, clear it, then log in again")]
    CheckpointRequired { platform: String, status: u16 },
    #[error("{platform} is rate limiting requests{}", retry_after.map(|d| format!(" (retry after {} s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        platform: String,
        retry_after: Option<Duration>,
    },
    #[error("{platform} has temporarily blocked this action: {message}")]
    ActionBlocked { platform: String, message: String },
    /// Not sent: the login's request budget is cooling down after the platform refused
    /// requests for going too fast (see `connector::budget`).
    #[error("requests to {platform} are paused for {} s after it asked to slow down", remaining.as_secs())]
    CoolingDown {
        platform: String,
        remaining: Duration,
        cause: CoolDownCause,
    },
    #[error("{platform} says it does not exist: {message}")]
    NotFound {
        platform: String,
        status: u16,
        message: String,
    },
    #[error("{platform} could not be reached: {message}")]
    Transient { platform: String, message: String },
    #[error("{platform} refused the request: {message}")]
    Platform {
        platform: String,
        status: u16,
        message: String,
    },
    #[error("the saved login is incomplete ({message}); log in again")]
    IncompleteLogin { message: String },
    #[error("invalid parameters for {action}: {message}")]
    InvalidParams { action: String, message: String },
    #[error("unexpected response to {action}: {message}")]
    MalformedResponse { action: String, message: String },
    #[error("no action named `{name}` in the connector spec")]
    UnknownAction { name: String },
    #[error("connector spec problem in {action}: {message}")]
    Spec { action: String, message: String },
}

impl ConnectorError {
    /// The HTTP status behind the error, when it came from a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            ConnectorError::SessionExpired { status, .. }
            | ConnectorError::ChallengeRequired { status, .. }
            | ConnectorError::CheckpointRequired { status, .. }
            | ConnectorError::NotFound { status, .. }
            | ConnectorError::Platform { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the user must log in again before anything else works.
    pub fn needs_login(&self) -> bool {
        matches!(
            self,
            ConnectorError::SessionExpired { .. }
                | ConnectorError::ChallengeRequired { .. }
                | ConnectorError::CheckpointRequired { .. }
                | ConnectorError::IncompleteLogin { .. }
        )
    }
}

/// Classifies a response. `Ok(())` means success; a 2xx body with
/// `"status": "fail"` is an error too. Body patterns are only matched against
/// failed responses, so a chat message quoting an error text cannot trip them.
pub fn classify(
    rules: &ErrorRules,
    platform: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body_text: &str,
    body_json: Option<&Value>,
) -> Result<(), ConnectorError> {
    let reported_fail = body_json
        .and_then(|body| body.get("status"))
        .and_then(Value::as_str)
        == Some("fail");
    if status.is_success() && !reported_fail {
        return Ok(());
    }
    let kind = rules
        .patterns
        .iter()
        .find(|(regex, _)| regex.is_match(body_text))
        .map(|(_, kind)| *kind)
        .or_else(|| rules.status_codes.get(&status.as_u16()).copied())
        .unwrap_or(match status.as_u16() {
            429 => ErrorKind::RateLimited,
            404 => ErrorKind::NotFound,
            500..=599 => ErrorKind::Transient,
            _ => ErrorKind::PlatformError,
        });
    let platform = platform.to_owned();
    let code = status.as_u16();
    let message = || failure_message(status, body_json);
    Err(match kind {
        ErrorKind::SessionExpired => ConnectorError::SessionExpired {
            platform,
            status: code,
            detail: expired_detail(&rules.expired_detail, body_json),
        },
        ErrorKind::CheckpointRequired => ConnectorError::CheckpointRequired {
            platform,
            status: code,
        },
        ErrorKind::ChallengeRequired => ConnectorError::ChallengeRequired {
            platform,
            status: code,
        },
        ErrorKind::RateLimited => ConnectorError::RateLimited {
            platform,
            retry_after: retry_after(headers),
        },
        ErrorKind::ActionBlocked => ConnectorError::ActionBlocked {
            platform,
            message: message(),
        },
        ErrorKind::NotFound => ConnectorError::NotFound {
            platform,
            status: code,
            message: message(),
        },
        ErrorKind::Transient => ConnectorError::Transient {
            platform,
            message: format!("HTTP {code}: {}", message()),
        },
        ErrorKind::PlatformError => ConnectorError::Platform {
            platform,
            status: code,
            message: message(),
        },
    })
}

/// `name: value` for each of `pointers` the body has (the name is the pointer's last
/// segment), joined with commas; `None` when the body has none of them.
fn expired_detail(pointers: &[String], body: Option<&Value>) -> Option<String> {
    let body = body?;
    let parts: Vec<String> = pointers
        .iter()
        .filter_map(|pointer| {
            let text = value_text(body.pointer(pointer)?)?;
            let name = pointer.rsplit('/').next().unwrap_or(pointer);
            Some(format!("{name}: {text}"))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The platform's own words for a failure, from the usual JSON fields.
fn failure_message(status: StatusCode, body: Option<&Value>) -> String {
    let from_body = body.and_then(|body| {
        [
            "/payload/message",
            "/feedback_message",
            "/error_body",
            "/message",
            "/error_title",
        ]
        .iter()
        .find_map(|pointer| body.pointer(pointer).and_then(Value::as_str))
        .filter(|text| !text.is_empty())
    });
    match from_body {
        Some(text) => text.to_owned(),
        None => status
            .canonical_reason()
            .map(|reason| format!("HTTP {} {reason}", status.as_u16()))
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16())),
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by the platforms we talk to).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// `session.retry:` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// First backoff (`1s`); doubled after every failed attempt.
    #[serde(default)]
    pub initial_backoff: Option<String>,
    /// Cap on one backoff.
    #[serde(default)]
    pub max_backoff: Option<String>,
    /// Cap on the time spent waiting across all retries of one request.
    #[serde(default)]
    pub max_total_wait: Option<String>,
}

/// When to retry a failed request: rate limits (honouring `Retry-After`) and
/// transient failures, with exponential backoff, within bounds. Login and
/// challenge errors are never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_total_wait: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The policy from the spec, defaults filled in; a bad value is (field, message).
    pub fn from_spec(spec: &RetrySpec) -> Result<RetryPolicy, (String, String)> {
        let default = RetryPolicy::default();
        let duration = |field: &str, text: &Option<String>, fallback: Duration| match text {
            Some(text) => parse_duration(text).map_err(|message| (field.to_owned(), message)),
            None => Ok(fallback),
        };
        let policy = RetryPolicy {
            max_attempts: spec.max_attempts.unwrap_or(default.max_attempts),
            initial_backoff: duration(
                "initial_backoff",
                &spec.initial_backoff,
                default.initial_backoff,
            )?,
            max_backoff: duration("max_backoff", &spec.max_backoff, default.max_backoff)?,
            max_total_wait: duration(
                "max_total_wait",
                &spec.max_total_wait,
                default.max_total_wait,
            )?,
        };
        if policy.max_attempts == 0 {
            return Err(("max_attempts".to_owned(), "must be at least 1".to_owned()));
        }
        Ok(policy)
    }

    /// How long to wait before attempt `attempt + 1` after `error`, or `None`
    /// to give up. `attempt` counts from 1; `waited` is the time already spent
    /// waiting; `retry_safe` says whether repeating the request cannot do a
    /// write twice (see [`Connector::execute`]).
    pub fn delay_before_retry(
        &self,
        error: &ConnectorError,
        attempt: u32,
        waited: Duration,
        retry_safe: bool,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let delay = match error {
            ConnectorError::RateLimited { retry_after, .. } => {
                retry_after.unwrap_or_else(|| self.backoff(attempt))
            }
            ConnectorError::Transient { .. } if retry_safe => self.backoff(attempt),
            _ => return None,
        };
        (waited + delay <= self.max_total_wait).then_some(delay)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// What a keep-alive run found.
#[derive(Debug, Clone, PartialEq)]
pub enum KeepAliveOutcome {
    /// The session works.
    Alive,
    /// The session is gone; `reaction` is what the spec says to do about it.
    LoggedOut {
        reaction: CheckReaction,
        error: ConnectorError,
    },
    /// It failed for a reason that may pass (network, rate limit): try again later.
    Failed(ConnectorError),
}

/// Runs the spec's keep-alive request once and classifies the result. The
/// bridge schedules it every `Spec::keep_alive.interval`.
pub async fn keep_alive(connector: &Connector, creds: &mut Credentials) -> KeepAliveOutcome {
    let Some(check) = &connector.spec().keep_alive else {
        return KeepAliveOutcome::Alive;
    };
    match connector
        .run_action(&check.action, Value::Null, Default::default(), creds)
        .await
    {
        Ok(_) => KeepAliveOutcome::Alive,
        Err(error) => {
            let by_status = error
                .status()
                .and_then(|status| check.on_error.get(&status).copied());
            match (by_status, error.needs_login()) {
                (Some(reaction), _) => KeepAliveOutcome::LoggedOut { reaction, error },
                (None, true) => KeepAliveOutcome::LoggedOut {
                    reaction: CheckReaction::ReconnectRequired,
                    error,
                },
                (None, false) => KeepAliveOutcome::Failed(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instagram_rules() -> ErrorRules {
        ErrorRules::compile(&ErrorDetectionSpec {
            status_codes: [
                (401, ErrorKind::SessionExpired),
                (403, ErrorKind::SessionExpired),
            ]
            .into_iter()
            .collect(),
            response_patterns: vec![
                ResponsePatternSpec {
                    pattern: r#""message":\s*"challenge_required""#.to_owned(),
                    error: ErrorKind::ChallengeRequired,
                },
                ResponsePatternSpec {
                    pattern: r#""message":\s*"feedback_required""#.to_owned(),
                    error: ErrorKind::ActionBlocked,
                },
            ],
            expired_detail: Vec::new(),
        })
        .unwrap()
    }

    fn classify_fixture(name: &str, headers: &HeaderMap) -> Result<(), ConnectorError> {
        let path = format!(
            "{}/tests/fixtures/instagram/errors/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let status = StatusCode::from_u16(fixture["http_status"].as_u64().unwrap() as u16).unwrap();
        let (text, json) = match &fixture["body"] {
            Value::Null => (fixture["body_text"].as_str().unwrap().to_owned(), None),
            body => (serde_json::to_string(body).unwrap(), Some(body.clone())),
        };
        classify(
            &instagram_rules(),
            "Instagram",
            status,
            headers,
            &text,
            json.as_ref(),
        )
    }

    #[test]
    fn recorded_errors_get_the_right_kind() {
        let none = HeaderMap::new();
        assert!(matches!(
            classify_fixture("login_required_403.json", &none),
            Err(ConnectorError::SessionExpired { status: 403, .. })
        ));
        assert!(matches!(
            classify_fixture("challenge_required_400.json", &none),
            Err(ConnectorError::ChallengeRequired { status: 400, .. })
        ));
        assert!(matches!(
            classify_fixture("feedback_required_400.json", &none),
            Err(ConnectorError::ActionBlocked { .. })
        ));
        assert!(matches!(
            classify_fixture("server_error_500.json", &none),
            Err(ConnectorError::Transient { .. })
        ));
        assert!(matches!(
            classify_fixture("not_found_404_plain.json", &none),
            Err(ConnectorError::NotFound { status: 404, .. })
        ));
        let failed_send = classify_fixture("broadcast_item_fail_200.json", &none).unwrap_err();
        assert_eq!(
            failed_send.to_string(),
            "Instagram refused the request: You can't message this account right now."
        );
    }

    #[test]
    fn rate_limit_reads_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(
            classify_fixture("rate_limit_429.json", &headers),
            Err(ConnectorError::RateLimited {
                platform: "Instagram".into(),
                retry_after: Some(Duration::from_secs(7)),
            })
        );
    }

    #[test]
    fn success_bodies_are_not_matched_against_patterns() {
        let body =
            serde_json::json!({"text": "\"message\":\"challenge_required\"", "status": "ok"});
        let text = body.to_string();
        assert_eq!(
            classify(
                &instagram_rules(),
                "Instagram",
                StatusCode::OK,
                &HeaderMap::new(),
                &text,
                Some(&body)
            ),
            Ok(())
        );
    }

    #[test]
    fn retry_policy_backs_off_and_gives_up() {
        let policy = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(150),
            max_total_wait: Duration::from_secs(1),
        };
        let transient = ConnectorError::Transient {
            platform: "X".into(),
            message: "timeout".into(),
        };
        assert_eq!(
            policy.delay_before_retry(&transient, 1, Duration::ZERO, true),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            policy.delay_before_retry(&transient, 2, Duration::ZERO, true),
            Some(Duration::from_millis(150))
        );
        assert_eq!(
            policy.delay_before_retry(&transient, 3, Duration::ZERO, true),
            None
        );
        assert_eq!(
            policy.delay_before_retry(&transient, 1, Duration::ZERO, false),
            None
        );
        let limited = ConnectorError::RateLimited {
            platform: "X".into(),
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            policy.delay_before_retry(&limited, 1, Duration::ZERO, false),
            None,
            "over the total wait"
        );
        let expired = ConnectorError::SessionExpired {
            platform: "X".into(),
            status: 403,
            detail: None,
        };
        assert_eq!(
            policy.delay_before_retry(&expired, 1, Duration::ZERO, true),
            None
        );
    }

    #[test]
    fn bad_patterns_are_reported_with_their_field() {
        let errors = ErrorRules::compile(&ErrorDetectionSpec {
            status_codes: IndexMap::new(),
            response_patterns: vec![ResponsePatternSpec {
                pattern: "(unclosed".to_owned(),
                error: ErrorKind::Transient,
            }],
            expired_detail: Vec::new(),
        })
        .unwrap_err();
        assert_eq!(errors[0].0, "response_patterns[0].pattern");
    }
}
