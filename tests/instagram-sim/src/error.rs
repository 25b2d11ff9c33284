//! Errors of the simulated world, and how each one is answered over HTTP in Instagram's
//! own shapes (bodies taken from tests/fixtures/instagram/errors/).

use axum::http::StatusCode;
use serde_json::{json, Value};

/// Everything an API call or a control call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("login required: no valid session")]
    LoginRequired,
    #[error("challenge required for account {pk}")]
    ChallengeRequired { pk: u64 },
    #[error("rate limit exceeded")]
    RateLimited,
    #[error("CSRF token missing or incorrect")]
    CsrfMismatch,
    #[error("thread {thread_id} does not exist")]
    ThreadNotFound { thread_id: String },
    #[error("item {item_id} does not exist in thread {thread_id}")]
    ItemNotFound { thread_id: String, item_id: String },
    #[error("item {item_id} was not sent by {pk}, it cannot be unsent by them")]
    NotOwnItem { item_id: String, pk: u64 },
    #[error("user {user} not found")]
    UserNotFound { user: String },
    #[error("account {pk} is not a member of thread {thread_id}")]
    NotAMember { thread_id: String, pk: u64 },
    #[error("upload {attachment_fbid} does not exist")]
    UploadNotFound { attachment_fbid: String },
    #[error("missing or invalid parameter `{name}`")]
    BadParameter { name: &'static str },
    #[error("unknown item kind `{item_type}`")]
    UnknownItemKind { item_type: String },
    #[error("item {item_id} cannot be edited: {reason}")]
    NotEditable {
        item_id: String,
        reason: &'static str,
    },
    #[error("cursor refused ({reason})")]
    StaleCursor { reason: &'static str },
    #[error("username {username} is already taken")]
    UsernameTaken { username: String },
    #[error("no endpoint {method} {path}")]
    NoEndpoint { method: String, path: String },
}

impl SimError {
    /// The HTTP status and JSON body Instagram answers this error with.
    pub fn status_and_body(&self) -> (StatusCode, Value) {
        use crate::render::error_body;
        match self {
            SimError::LoginRequired => (StatusCode::FORBIDDEN, error_body("login_required_403")),
            SimError::ChallengeRequired { .. } => (
                StatusCode::BAD_REQUEST,
                error_body("challenge_required_400"),
            ),
            SimError::RateLimited => (StatusCode::TOO_MANY_REQUESTS, error_body("rate_limit_429")),
            SimError::CsrfMismatch => (
                StatusCode::FORBIDDEN,
                json!({"message": "CSRF token missing or incorrect", "status": "fail"}),
            ),
            SimError::ThreadNotFound { .. } | SimError::NotAMember { .. } => (
                StatusCode::BAD_REQUEST,
                error_body("thread_does_not_exist_400"),
            ),
            SimError::ItemNotFound { .. } => (
                StatusCode::BAD_REQUEST,
                json!({"message": "Item does not exist", "status": "fail"}),
            ),
            SimError::NotOwnItem { .. } => (
                StatusCode::BAD_REQUEST,
                json!({"message": "You can only unsend your own messages.", "status": "fail"}),
            ),
            SimError::UserNotFound { .. } => (
                StatusCode::NOT_FOUND,
                json!({"message": "User not found", "status": "fail"}),
            ),
            SimError::UploadNotFound { .. } => (
                StatusCode::BAD_REQUEST,
                json!({"message": "Upload not found", "status": "fail"}),
            ),
            SimError::BadParameter { name } => (
                StatusCode::BAD_REQUEST,
                json!({"message": format!("Invalid parameter {name}"), "status": "fail"}),
            ),
            SimError::UnknownItemKind { .. } | SimError::UsernameTaken { .. } => (
                StatusCode::BAD_REQUEST,
                json!({"message": self.to_string(), "status": "fail"}),
            ),
            SimError::NotEditable { reason, .. } => (
                StatusCode::BAD_REQUEST,
                json!({"message": reason, "status": "fail"}),
            ),
            // No capture shows Instagram's answer; it is the generic 400 failure shape.
            SimError::StaleCursor { .. } => (
                StatusCode::BAD_REQUEST,
                json!({"message": "Invalid cursor", "status": "fail"}),
            ),
            SimError::NoEndpoint { .. } => {
                (StatusCode::NOT_FOUND, error_body("not_found_404_json"))
            }
        }
    }
}
