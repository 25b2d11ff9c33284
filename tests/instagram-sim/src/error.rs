//! Errors of the simulated world, and how each one is answered over HTTP in Instagram's
//! own shapes (bodies taken from tests/fixtures/instagram/errors/).

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::session::SessionEnd;

/// Everything an API call or a control call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("login required: no valid session")]
    LoginRequired,
    #[error("challenge required for account {pk}")]
    ChallengeRequired { pk: u64 },
    #[error("checkpoint required for account {pk}")]
    CheckpointRequired { pk: u64 },
    #[error("the session has ended ({end:?})")]
    SessionEnded { end: SessionEnd },
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
    #[error("not Instagram's app: User-Agent or X-IG-App-ID missing or wrong")]
    UserAgentMismatch,
    #[error("send refused: {message}")]
    BadSend { message: &'static str },
    #[error("this endpoint takes a signed body")]
    SignatureRequired,
    #[error("session {pk} sends too fast: feedback_required")]
    FeedbackRequired { pk: u64 },
    #[error("upload {attachment_fbid} is still being transcoded")]
    TranscodeNotFinished { attachment_fbid: String },
    #[error("upload {attachment_fbid} is not a {wanted}")]
    WrongUploadKind {
        attachment_fbid: String,
        wanted: &'static str,
    },
    #[error("upload refused: {message}")]
    UploadRefused { message: String },
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
            SimError::CheckpointRequired { .. } => (
                StatusCode::BAD_REQUEST,
                error_body("checkpoint_required_400"),
            ),
            SimError::SessionEnded { end } => (StatusCode::FORBIDDEN, error_body(end.fixture())),
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
            // Invented in the generic failure shape: no capture shows Instagram's answer
            // to an edit it refuses (WRITE-FLOWS.md §1).
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
            SimError::UserAgentMismatch => (
                StatusCode::BAD_REQUEST,
                json!({"message": "useragent mismatch", "status": "fail"}),
            ),
            // "Text is missing" and "Need to specify thread ID or recipient users" are
            // captured (WRITE-FLOWS.md §7); the other messages are invented in the same
            // generic shape, as no capture shows what Instagram says.
            SimError::BadSend { message } => (
                StatusCode::BAD_REQUEST,
                json!({"message": message, "status": "fail"}),
            ),
            // Invented in the generic failure shape: no capture shows the answer.
            SimError::SignatureRequired => (
                StatusCode::BAD_REQUEST,
                json!({"message": "Invalid signed_body", "status": "fail"}),
            ),
            SimError::FeedbackRequired { .. } => (
                StatusCode::BAD_REQUEST,
                error_body("feedback_required_direct_400"),
            ),
            SimError::TranscodeNotFinished { .. } => (
                StatusCode::ACCEPTED,
                json!({"message": "Transcode not finished yet.", "status": "fail"}),
            ),
            // Invented in the generic failure shape: no capture shows the answer.
            SimError::WrongUploadKind { .. } => (
                StatusCode::BAD_REQUEST,
                json!({"message": "Invalid attachment_fbid", "status": "fail"}),
            ),
            // The error shape of Facebook's resumable upload host; the messages are ours.
            SimError::UploadRefused { message } => (
                StatusCode::BAD_REQUEST,
                json!({"debug_info": {"retriable": false, "type": "ProcessingFailedError", "message": message}}),
            ),
        }
    }
}
