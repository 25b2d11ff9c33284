//! The appservice API server (axum): transactions pushed by the homeserver,
//! user and room-alias queries, and ping, on both the `/_matrix/app/v1/`
//! paths and the legacy unprefixed ones. Every request must carry the
//! `hs_token`. Transactions are deduplicated by txnId through the store, so a
//! retry (even after a restart) is processed once, and a retry of a
//! transaction that failed part-way through skips the events already handled.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ruma::events::AnyTimelineEvent;
use ruma::serde::Raw;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use crate::matrix::namespace::UserNamespace;
use crate::store::Store;

/// Processing of one transaction's content failed in a way the homeserver
/// should retry (the transaction is then not recorded as processed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RetryTransaction(pub String);

/// What the bridge does with the events the homeserver pushes.
#[async_trait]
pub trait AppserviceHandler: Send + Sync {
    /// Handles one timeline event that it does not ignore. Errors meant for
    /// users are answered by the handler itself; `Err` asks the homeserver to
    /// resend the transaction.
    async fn handle_event(&self, event: AnyTimelineEvent) -> Result<(), RetryTransaction>;

    /// Whether the handler drops this event without acting on it (the echoes
    /// of what the bridge itself sent; `raw` is the event as received, with
    /// any content keys the typed event drops). Such events are not tracked
    /// for exactly-once handling: handling one twice does nothing twice, and
    /// every bridged message comes back as one.
    fn ignores(&self, event: &AnyTimelineEvent, raw: &Raw<AnyTimelineEvent>) -> bool;

    /// Handles one ephemeral event (`m.typing`, `m.receipt`, `m.presence`).
    async fn handle_ephemeral(&self, event: Value);

    /// Makes sure a user of the bridge's namespace exists on the homeserver,
    /// which asks before it uses one it does not know yet.
    async fn provision_user(&self, user_id: &str) -> Result<(), ProvisionError>;
}

/// A namespace user could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot register {user_id}: {reason}")]
pub struct ProvisionError {
    pub user_id: String,
    pub reason: String,
}

/// Shared state of the appservice API.
pub struct AppserviceState {
    hs_token: String,
    namespace: UserNamespace,
    store: Store,
    handler: Arc<dyn AppserviceHandler>,
    /// Serializes transactions so events are handled in order and a txnId
    /// cannot be processed by two concurrent requests.
    transaction_lock: Mutex<()>,
}

impl AppserviceState {
    pub fn new(
        hs_token: &str,
        namespace: UserNamespace,
        store: Store,
        handler: Arc<dyn AppserviceHandler>,
    ) -> AppserviceState {
        AppserviceState {
            hs_token: hs_token.to_owned(),
            namespace,
            store,
            handler,
            transaction_lock: Mutex::new(()),
        }
    }
}

/// The appservice API routes. `max_body_bytes` bounds a transaction body.
pub fn router(state: Arc<AppserviceState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route(
            "/_matrix/app/v1/transactions/{txn_id}",
            put(push_transaction),
        )
        .route("/transactions/{txn_id}", put(push_transaction))
        .route("/_matrix/app/v1/users/{user_id}", get(query_user))
        .route("/users/{user_id}", get(query_user))
        .route("/_matrix/app/v1/rooms/{alias}", get(query_room_alias))
        .route("/rooms/{alias}", get(query_room_alias))
        .route("/_matrix/app/v1/ping", post(ping))
        .route("/_matrix/app/unstable/fi.mau.msc2659/ping", post(ping))
        .fallback(unknown_endpoint)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_hs_token,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// A Matrix error answer: `{"errcode": ..., "error": ...}`.
fn matrix_error(status: StatusCode, errcode: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "errcode": errcode, "error": message })),
    )
        .into_response()
}

/// Checks `Authorization: Bearer <hs_token>` or the legacy `?access_token=`.
async fn require_hs_token(
    State(state): State<Arc<AppserviceState>>,
    request: Request,
    next: Next,
) -> Response {
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    let from_query = request.uri().query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "access_token")
            .map(|(_, value)| value.into_owned())
    });
    match from_header.or(from_query) {
        None => matrix_error(
            StatusCode::UNAUTHORIZED,
            "M_UNAUTHORIZED",
            "missing hs_token",
        ),
        Some(token) if tokens_equal(&token, &state.hs_token) => next.run(request).await,
        Some(_) => matrix_error(StatusCode::FORBIDDEN, "M_FORBIDDEN", "invalid hs_token"),
    }
}

/// Compares tokens in constant time (over their digests, so the length of
/// the expected token does not leak either).
fn tokens_equal(given: &str, expected: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    given.ct_eq(&expected).into()
}

/// A transaction body, read leniently: each event is parsed on its own.
#[derive(Deserialize)]
struct TransactionBody {
    #[serde(default)]
    events: Vec<Raw<AnyTimelineEvent>>,
    #[serde(default)]
    ephemeral: Vec<Value>,
    #[serde(default, rename = "de.sorunome.msc2409.ephemeral")]
    unstable_ephemeral: Vec<Value>,
}

async fn push_transaction(
    State(state): State<Arc<AppserviceState>>,
    Path(txn_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            tracing::warn!(%txn_id, "transaction body too large, refused");
            return matrix_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "M_TOO_LARGE",
                "transaction body too large",
            );
        }
        Err(rejection) => {
            return matrix_error(rejection.status(), "M_UNKNOWN", &rejection.body_text())
        }
    };
    let transaction: TransactionBody = match serde_json::from_slice(&body) {
        Ok(transaction) => transaction,
        Err(e) => {
            tracing::warn!(%txn_id, error = %e, "transaction body is not a valid transaction");
            let errcode = if e.is_syntax() || e.is_eof() {
                "M_NOT_JSON"
            } else {
                "M_BAD_JSON"
            };
            return matrix_error(
                StatusCode::BAD_REQUEST,
                errcode,
                &format!("invalid transaction body: {e}"),
            );
        }
    };

    let _serialized = state.transaction_lock.lock().await;
    match state.store.transaction_seen(&txn_id).await {
        Ok(true) => {
            tracing::debug!(%txn_id, "transaction already processed");
            return Json(json!({})).into_response();
        }
        Ok(false) => {}
        Err(e) => return store_failure(&txn_id, &e),
    }

    tracing::debug!(%txn_id, events = transaction.events.len(), "processing transaction");
    for raw in transaction.events {
        match raw.deserialize() {
            Ok(event) => {
                // A retry of a transaction that failed part-way through skips
                // the events its earlier attempt already handled.
                if state.handler.ignores(&event, &raw) {
                    continue;
                }
                let event_id = event.event_id().to_owned();
                match state.store.event_seen(event_id.as_str()).await {
                    Ok(true) => {
                        tracing::debug!(%txn_id, %event_id, "event already handled");
                        continue;
                    }
                    Ok(false) => {}
                    Err(e) => return store_failure(&txn_id, &e),
                }
                if let Err(e) = state.handler.handle_event(event).await {
                    tracing::warn!(%txn_id, error = %e, "transaction will be retried by the homeserver");
                    return matrix_error(StatusCode::INTERNAL_SERVER_ERROR, "M_UNKNOWN", &e.0);
                }
                if let Err(e) = state.store.record_event(event_id.as_str()).await {
                    return store_failure(&txn_id, &e);
                }
            }
            Err(e) => {
                let event_id = raw.get_field::<String>("event_id").ok().flatten();
                let event_type = raw.get_field::<String>("type").ok().flatten();
                tracing::warn!(
                    %txn_id,
                    event_id = event_id.as_deref().unwrap_or("?"),
                    event_type = event_type.as_deref().unwrap_or("?"),
                    error = %e,
                    "skipping malformed event"
                );
            }
        }
    }
    for event in transaction
        .ephemeral
        .into_iter()
        .chain(transaction.unstable_ephemeral)
    {
        state.handler.handle_ephemeral(event).await;
    }

    match state.store.record_transaction(&txn_id).await {
        Ok(()) => Json(json!({})).into_response(),
        Err(e) => store_failure(&txn_id, &e),
    }
}

fn store_failure(txn_id: &str, error: &crate::store::StoreError) -> Response {
    tracing::error!(%txn_id, %error, "cannot track transaction in the database");
    matrix_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "M_UNKNOWN",
        "the bridge's database is unavailable",
    )
}

async fn query_user(
    State(state): State<Arc<AppserviceState>>,
    Path(user_id): Path<String>,
) -> Response {
    if !state.namespace.may_provision(&user_id) {
        return matrix_error(
            StatusCode::NOT_FOUND,
            "M_NOT_FOUND",
            "no such user in this bridge's namespace",
        );
    }
    match state.handler.provision_user(&user_id).await {
        Ok(()) => Json(json!({})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "user query failed");
            matrix_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "M_UNKNOWN",
                &e.to_string(),
            )
        }
    }
}

async fn query_room_alias(Path(alias): Path<String>) -> Response {
    tracing::debug!(%alias, "room alias query: the bridge provides no aliases");
    matrix_error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "no such room alias")
}

async fn ping() -> Response {
    Json(json!({})).into_response()
}

async fn method_not_allowed() -> Response {
    matrix_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "M_UNRECOGNIZED",
        "method not allowed on this appservice endpoint",
    )
}

async fn unknown_endpoint() -> Response {
    matrix_error(
        StatusCode::NOT_FOUND,
        "M_UNRECOGNIZED",
        "unrecognized appservice endpoint",
    )
}
