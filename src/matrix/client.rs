//! The homeserver client: ruma's typed client-server requests sent over
//! reqwest with the appservice's `as_token`, acting as the bot or as a puppet
//! through identity assertion (`?user_id=`). Transient failures (connection
//! errors, 5xx, 429) are retried with backoff.

use std::borrow::{Borrow, Cow};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use ruma::api::client::{
    account::{
        register::{self, LoginType},
        whoami,
    },
    appservice::request_ping,
    authenticated_media::get_content,
    config::{get_global_account_data, set_global_account_data},
    media::create_content,
    membership::{
        invite_user::{self, v3::InvitationRecipient},
        join_room_by_id, joined_members, joined_rooms, leave_room,
    },
    message::send_message_event,
    presence::set_presence,
    profile::{set_avatar_url, set_display_name},
    read_marker::set_read_marker,
    receipt::create_receipt,
    redact::redact_event,
    room::create_room,
    state::{get_state_event_for_key, get_state_events, send_state_event},
    typing::create_typing_event,
};
use ruma::api::path_builder::{PathBuilder, SinglePath, VersionHistory};
use ruma::api::{
    auth_scheme::{AuthScheme, SendAccessToken},
    AppserviceUserIdentity, IncomingResponseExt, MatrixVersion, OutgoingRequest,
    OutgoingRequestAppserviceExt, SupportedVersions,
};
use ruma::events::receipt::ReceiptThread;
use ruma::events::{
    AnyMessageLikeEventContent, AnyStateEvent, GlobalAccountDataEventType, MessageLikeEventType,
    StateEventContent, StateEventType,
};
use ruma::presence::PresenceState;
use ruma::serde::Raw;
use ruma::{
    EventId, MilliSecondsSinceUnixEpoch, MxcUri, OwnedEventId, OwnedMxcUri, OwnedRoomId,
    OwnedUserId, RoomId, TransactionId, UserId,
};
use serde::Deserialize;
use tokio::sync::OnceCell;

/// Why a homeserver request failed. Carries the endpoint and the Matrix
/// errcode, never the access token.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the homeserver at {base_url} ({endpoint}): {source}")]
    Unreachable {
        base_url: String,
        endpoint: String,
        source: reqwest::Error,
    },
    #[error("homeserver answered {endpoint} with HTTP {status} {errcode}: {message}")]
    Matrix {
        endpoint: String,
        status: u16,
        errcode: String,
        message: String,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Setup(reqwest::Error),
    #[error("cannot build the request for {endpoint}: {detail}")]
    Build { endpoint: String, detail: String },
    #[error("unexpected response from {endpoint}: {detail}")]
    Response { endpoint: String, detail: String },
}

impl ClientError {
    /// The Matrix errcode of a homeserver error answer (`M_FORBIDDEN`, ...).
    pub fn errcode(&self) -> Option<&str> {
        match self {
            ClientError::Matrix { errcode, .. } => Some(errcode),
            _ => None,
        }
    }

    /// The HTTP status of a homeserver error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Matrix { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How transient failures are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts, including the first.
    pub attempts: u32,
    /// Delay before the first retry; doubled after each one.
    pub initial_delay: Duration,
    /// Upper bound for one delay (also caps `retry_after_ms`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// Supplies the path-selection input a ruma endpoint needs: nothing for
/// single-path endpoints, the homeserver's versions for versioned ones.
pub trait PathSelection: PathBuilder {
    fn selection_input(versions: &SupportedVersions) -> Self::Input<'_>;
}

impl PathSelection for SinglePath {
    fn selection_input(_versions: &SupportedVersions) -> Self::Input<'_> {}
}

impl PathSelection for VersionHistory {
    fn selection_input(versions: &SupportedVersions) -> Self::Input<'_> {
        Cow::Borrowed(versions)
    }
}

/// A Matrix error body as the homeserver sends it.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errcode: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    retry_after_ms: Option<u64>,
}

/// The `/versions` answer.
#[derive(Deserialize)]
struct VersionsBody {
    versions: Vec<String>,
    #[serde(default)]
    unstable_features: BTreeMap<String, bool>,
}

tokio::task_local! {
    /// How long the current task has waited for homeserver answers, while
    /// [`counting_waits`] measures it.
    static WAITED: Cell<Duration>;
}

/// Runs `work`, counting the time its task spends waiting for the
/// homeserver's answers (retries included); [`waited_so_far`] reads it.
pub async fn counting_waits<F: Future>(work: F) -> F::Output {
    WAITED.scope(Cell::new(Duration::ZERO), work).await
}

/// How long the current task has waited for the homeserver inside
/// [`counting_waits`] so far (zero outside it).
pub fn waited_so_far() -> Duration {
    WAITED.try_with(Cell::get).unwrap_or_default()
}

/// Adds the time since it was made to [`WAITED`] when dropped, so an
/// exchange counts however it ends (answer, error, cancellation).
struct WaitCounter(Instant);

impl Drop for WaitCounter {
    fn drop(&mut self) {
        let spent = self.0.elapsed();
        let _ = WAITED.try_with(|waited| waited.set(waited.get() + spent));
    }
}

/// Client for the homeserver's client-server API, authenticated as the
/// appservice. Cheap to clone.
#[derive(Clone)]
pub struct HomeserverClient {
    http: reqwest::Client,
    base_url: String,
    as_token: String,
    retry: RetryPolicy,
    versions: std::sync::Arc<OnceCell<SupportedVersions>>,
}

impl fmt::Debug for HomeserverClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HomeserverClient")
            .field("base_url", &self.base_url)
            .field("as_token", &"<redacted>")
            .field("retry", &self.retry)
            .finish()
    }
}

impl HomeserverClient {
    pub fn new(base_url: &str, as_token: &str) -> Result<HomeserverClient, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(ClientError::Setup)?;
        Ok(HomeserverClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            as_token: as_token.to_owned(),
            retry: RetryPolicy::default(),
            versions: Default::default(),
        })
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> HomeserverClient {
        self.retry = retry;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The homeserver's spec versions, fetched once from `/versions`.
    async fn supported_versions(&self) -> Result<&SupportedVersions, ClientError> {
        self.versions
            .get_or_try_init(|| async {
                let endpoint = "GET /_matrix/client/versions".to_owned();
                let url = format!("{}/_matrix/client/versions", self.base_url);
                let (status, body) = self.execute(&endpoint, || self.http.get(&url)).await?;
                let parsed: VersionsBody =
                    serde_json::from_slice(&body).map_err(|e| ClientError::Response {
                        endpoint: endpoint.clone(),
                        detail: format!("HTTP {status}: {e}"),
                    })?;
                let mut versions =
                    SupportedVersions::from_parts(&parsed.versions, &parsed.unstable_features);
                if versions.versions.is_empty() {
                    versions.versions.insert(MatrixVersion::V1_1);
                }
                Ok(versions)
            })
            .await
    }

    /// Sends one ruma request as the appservice (or as `as_user`) and parses
    /// the typed response.
    pub async fn send<R>(
        &self,
        request: R,
        as_user: Option<&UserId>,
    ) -> Result<R::IncomingResponse, ClientError>
    where
        R: OutgoingRequest,
        R::PathBuilder: PathSelection,
        for<'a> R::Authentication: AuthScheme<Input<'a> = SendAccessToken<'a>>,
    {
        let versions = self.supported_versions().await?;
        let mut identity = AppserviceUserIdentity::default();
        identity.user_id = as_user;
        let http_request = request
            .try_into_http_request_with_identity::<Vec<u8>>(
                &self.base_url,
                SendAccessToken::Always(&self.as_token),
                identity,
                R::PathBuilder::selection_input(versions),
            )
            .map_err(|e| ClientError::Build {
                endpoint: std::any::type_name::<R>().to_owned(),
                detail: e.to_string(),
            })?;
        let (parts, body) = http_request.into_parts();
        let endpoint = format!("{} {}", parts.method, parts.uri.path());
        let url = parts.uri.to_string();
        let (status, response_body) = self
            .execute(&endpoint, || {
                self.http
                    .request(parts.method.clone(), &url)
                    .headers(parts.headers.clone())
                    .body(body.clone())
            })
            .await?;
        let response = http::Response::builder()
            .status(status)
            .body(response_body.as_slice())
            .map_err(|e| ClientError::Response {
                endpoint: endpoint.clone(),
                detail: e.to_string(),
            })?;
        R::IncomingResponse::try_from_http_response(response).map_err(|e| ClientError::Response {
            endpoint,
            detail: e.to_string(),
        })
    }

    /// Runs one HTTP exchange with retries; returns the status and body of a
    /// success, or the error of the last attempt.
    async fn execute(
        &self,
        endpoint: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let _counter = WaitCounter(Instant::now());
        let mut delay = self.retry.initial_delay;
        let mut attempt = 1;
        loop {
            match self.attempt(endpoint, build()).await {
                Ok(success) => return Ok(success),
                Err(Attempt::Final(error)) => return Err(error),
                Err(Attempt::Transient { error, retry_after }) => {
                    if attempt >= self.retry.attempts {
                        return Err(error);
                    }
                    let wait = retry_after.unwrap_or(delay).min(self.retry.max_delay);
                    tracing::warn!(%endpoint, attempt, ?wait, %error, "homeserver request failed, retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    delay = (delay * 2).min(self.retry.max_delay);
                }
            }
        }
    }

    async fn attempt(
        &self,
        endpoint: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), Attempt> {
        let response = request.send().await.map_err(|source| {
            let transient = source.is_connect() || source.is_timeout() || source.is_request();
            let error = ClientError::Unreachable {
                base_url: self.base_url.clone(),
                endpoint: endpoint.to_owned(),
                source: source.without_url(),
            };
            if transient {
                Attempt::Transient {
                    error,
                    retry_after: None,
                }
            } else {
                Attempt::Final(error)
            }
        })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|source| Attempt::Transient {
                error: ClientError::Unreachable {
                    base_url: self.base_url.clone(),
                    endpoint: endpoint.to_owned(),
                    source: source.without_url(),
                },
                retry_after: None,
            })?;
        if status < 400 {
            return Ok((status, body.to_vec()));
        }
        let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
        let retry_after = parsed
            .as_ref()
            .and_then(|b| b.retry_after_ms)
            .map(Duration::from_millis);
        let error = ClientError::Matrix {
            endpoint: endpoint.to_owned(),
            status,
            errcode: parsed
                .as_ref()
                .and_then(|b| b.errcode.clone())
                .unwrap_or_else(|| "M_UNKNOWN".to_owned()),
            message: parsed
                .and_then(|b| b.error)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect()),
        };
        if status == 429 || status >= 500 {
            Err(Attempt::Transient { error, retry_after })
        } else {
            Err(Attempt::Final(error))
        }
    }

    /// Who the homeserver says the as_token (or `as_user`) is.
    pub async fn whoami(&self, as_user: Option<&UserId>) -> Result<OwnedUserId, ClientError> {
        let response = self.send(whoami::v3::Request::new(), as_user).await?;
        Ok(response.user_id)
    }

    /// Registers a user in the appservice's namespace; an existing user
    /// (`M_USER_IN_USE`) counts as success.
    pub async fn register_user(&self, localpart: &str) -> Result<(), ClientError> {
        let mut request = register::v3::Request::new();
        request.username = Some(localpart.to_owned());
        request.login_type = Some(LoginType::ApplicationService);
        request.inhibit_login = true;
        match self.send(request, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.errcode() == Some("M_USER_IN_USE") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Asks the homeserver to ping us back (`POST .../appservice/{id}/ping`);
    /// returns the round trip the homeserver measured.
    pub async fn ping_appservice(
        &self,
        appservice_id: &str,
        transaction_id: &TransactionId,
    ) -> Result<Duration, ClientError> {
        let mut request = request_ping::v1::Request::new(appservice_id.to_owned());
        request.transaction_id = Some(transaction_id.to_owned());
        Ok(self.send(request, None).await?.duration)
    }

    pub async fn create_room(
        &self,
        request: create_room::v3::Request,
        as_user: Option<&UserId>,
    ) -> Result<OwnedRoomId, ClientError> {
        Ok(self.send(request, as_user).await?.room_id)
    }

    pub async fn invite(
        &self,
        room_id: &RoomId,
        invitee: &UserId,
        as_user: Option<&UserId>,
    ) -> Result<(), ClientError> {
        let recipient =
            InvitationRecipient::UserId(invite_user::v3::InviteUserId::new(invitee.to_owned()));
        self.send(
            invite_user::v3::Request::new(room_id.to_owned(), recipient),
            as_user,
        )
        .await?;
        Ok(())
    }

    pub async fn join(
        &self,
        room_id: &RoomId,
        as_user: Option<&UserId>,
    ) -> Result<(), ClientError> {
        self.send(
            join_room_by_id::v3::Request::new(room_id.to_owned()),
            as_user,
        )
        .await?;
        Ok(())
    }

    pub async fn leave(
        &self,
        room_id: &RoomId,
        reason: Option<&str>,
        as_user: Option<&UserId>,
    ) -> Result<(), ClientError> {
        let mut request = leave_room::v3::Request::new(room_id.to_owned());
        request.reason = reason.map(str::to_owned);
        self.send(request, as_user).await?;
        Ok(())
    }

    // The per-field profile endpoints are deprecated in favour of
    // `set_profile_field`, whose path needs Matrix 1.16; these work everywhere.
    #[allow(deprecated)]
    pub async fn set_displayname(
        &self,
        user_id: &UserId,
        displayname: Option<&str>,
    ) -> Result<(), ClientError> {
        let request =
            set_display_name::v3::Request::new(user_id.to_owned(), displayname.map(str::to_owned));
        self.send(request, Some(user_id)).await?;
        Ok(())
    }

    #[allow(deprecated)]
    pub async fn set_avatar_url(
        &self,
        user_id: &UserId,
        avatar_url: Option<OwnedMxcUri>,
    ) -> Result<(), ClientError> {
        let request = set_avatar_url::v3::Request::new(user_id.to_owned(), avatar_url);
        self.send(request, Some(user_id)).await?;
        Ok(())
    }

    /// Sends a message-like event. The caller picks `txn_id` so a retried
    /// send is deduplicated by the homeserver; `ts` overrides the timestamp.
    pub async fn send_message(
        &self,
        room_id: &RoomId,
        txn_id: &TransactionId,
        content: &AnyMessageLikeEventContent,
        ts: Option<MilliSecondsSinceUnixEpoch>,
        as_user: Option<&UserId>,
    ) -> Result<OwnedEventId, ClientError> {
        let mut request =
            send_message_event::v3::Request::new(room_id.to_owned(), txn_id.to_owned(), content)
                .map_err(|e| ClientError::Build {
                    endpoint: "send message".to_owned(),
                    detail: e.to_string(),
                })?;
        request.timestamp = ts;
        Ok(self.send(request, as_user).await?.event_id)
    }

    /// Sends a message-like event of any type from JSON content (bridged
    /// events carry keys ruma's typed contents do not know). The caller picks
    /// `txn_id`; `ts` overrides the timestamp.
    pub async fn send_raw(
        &self,
        room_id: &RoomId,
        txn_id: &TransactionId,
        event_type: &str,
        content: &serde_json::Value,
        ts: Option<MilliSecondsSinceUnixEpoch>,
        as_user: Option<&UserId>,
    ) -> Result<OwnedEventId, ClientError> {
        let mut request = send_message_event::v3::Request::new_raw(
            room_id.to_owned(),
            txn_id.to_owned(),
            MessageLikeEventType::from(event_type),
            raw_json(content, "send message")?,
        );
        request.timestamp = ts;
        Ok(self.send(request, as_user).await?.event_id)
    }

    /// Sends a state event of any type from JSON content.
    pub async fn send_raw_state(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
        content: &serde_json::Value,
        as_user: Option<&UserId>,
    ) -> Result<OwnedEventId, ClientError> {
        let request = send_state_event::v3::Request::new_raw(
            room_id.to_owned(),
            StateEventType::from(event_type),
            state_key.to_owned(),
            raw_json(content, "send state")?,
        );
        Ok(self.send(request, as_user).await?.event_id)
    }

    /// The content of one current state event, or `None` when the room has none.
    pub async fn state_event(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
        as_user: Option<&UserId>,
    ) -> Result<Option<serde_json::Value>, ClientError> {
        let request = get_state_event_for_key::v3::Request::new(
            room_id.to_owned(),
            StateEventType::from(event_type),
            state_key.to_owned(),
        );
        match self.send(request, as_user).await {
            Ok(response) => serde_json::from_str(response.event_or_content.get())
                .map(Some)
                .map_err(|e| ClientError::Response {
                    endpoint: "get state event".to_owned(),
                    detail: e.to_string(),
                }),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A user's global account data of one type, or `None` when unset.
    pub async fn account_data(
        &self,
        user_id: &UserId,
        event_type: &str,
    ) -> Result<Option<serde_json::Value>, ClientError> {
        let request = get_global_account_data::v3::Request::new(
            user_id.to_owned(),
            GlobalAccountDataEventType::from(event_type),
        );
        match self.send(request, Some(user_id)).await {
            Ok(response) => serde_json::from_str(response.account_data.json().get())
                .map(Some)
                .map_err(|e| ClientError::Response {
                    endpoint: "get account data".to_owned(),
                    detail: e.to_string(),
                }),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces a user's global account data of one type.
    pub async fn set_account_data(
        &self,
        user_id: &UserId,
        event_type: &str,
        content: &serde_json::Value,
    ) -> Result<(), ClientError> {
        let request = set_global_account_data::v3::Request::new_raw(
            user_id.to_owned(),
            GlobalAccountDataEventType::from(event_type),
            raw_json(content, "set account data")?,
        );
        self.send(request, Some(user_id)).await?;
        Ok(())
    }

    /// The rooms the appservice user (or `as_user`) has joined.
    pub async fn joined_rooms(
        &self,
        as_user: Option<&UserId>,
    ) -> Result<Vec<OwnedRoomId>, ClientError> {
        Ok(self
            .send(joined_rooms::v3::Request::new(), as_user)
            .await?
            .joined_rooms)
    }

    /// Sends a state event; `ts` overrides the timestamp.
    pub async fn send_state<T, K>(
        &self,
        room_id: &RoomId,
        state_key: &K,
        content: &T,
        ts: Option<MilliSecondsSinceUnixEpoch>,
        as_user: Option<&UserId>,
    ) -> Result<OwnedEventId, ClientError>
    where
        T: StateEventContent,
        T::StateKey: Borrow<K>,
        K: AsRef<str> + ?Sized,
    {
        let mut request =
            send_state_event::v3::Request::new(room_id.to_owned(), state_key, content).map_err(
                |e| ClientError::Build {
                    endpoint: "send state".to_owned(),
                    detail: e.to_string(),
                },
            )?;
        request.timestamp = ts;
        Ok(self.send(request, as_user).await?.event_id)
    }

    pub async fn redact(
        &self,
        room_id: &RoomId,
        event_id: &EventId,
        txn_id: &TransactionId,
        reason: Option<&str>,
        as_user: Option<&UserId>,
    ) -> Result<OwnedEventId, ClientError> {
        let mut request = redact_event::v3::Request::new(
            room_id.to_owned(),
            event_id.to_owned(),
            txn_id.to_owned(),
        );
        request.reason = reason.map(str::to_owned);
        Ok(self.send(request, as_user).await?.event_id)
    }

    /// Uploads media and returns its `mxc://` URI.
    pub async fn upload(
        &self,
        data: Vec<u8>,
        content_type: Option<&str>,
        filename: Option<&str>,
        as_user: Option<&UserId>,
    ) -> Result<OwnedMxcUri, ClientError> {
        let mut request = create_content::v3::Request::new(data);
        request.content_type = content_type.map(str::to_owned);
        request.filename = filename.map(str::to_owned);
        Ok(self.send(request, as_user).await?.content_uri)
    }

    /// Downloads media from the media repository with authenticated media
    /// (`/_matrix/client/v1/media/download`, which serves new media only to
    /// authenticated requests); returns its bytes and `Content-Type`.
    pub async fn download(&self, mxc: &MxcUri) -> Result<(Vec<u8>, Option<String>), ClientError> {
        let (server_name, media_id) = mxc.parts().map_err(|e| ClientError::Build {
            endpoint: "download media".to_owned(),
            detail: format!("{mxc} is not an mxc:// URI: {e}"),
        })?;
        let request = get_content::v1::Request::new(media_id.to_owned(), server_name.to_owned());
        let response = self.send(request, None).await?;
        Ok((response.file, response.content_type))
    }

    /// Starts (`Some(timeout)`) or stops (`None`) typing as `user_id`.
    pub async fn typing(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
        timeout: Option<Duration>,
    ) -> Result<(), ClientError> {
        use create_typing_event::v3::{Typing, TypingInfo};
        let state = match timeout {
            Some(timeout) => Typing::Yes(TypingInfo::new(timeout)),
            None => Typing::No,
        };
        let request =
            create_typing_event::v3::Request::new(user_id.to_owned(), room_id.to_owned(), state);
        self.send(request, Some(user_id)).await?;
        Ok(())
    }

    /// Sends a public read receipt for `event_id` as `user_id`.
    pub async fn read_receipt(
        &self,
        room_id: &RoomId,
        event_id: &EventId,
        user_id: &UserId,
    ) -> Result<(), ClientError> {
        let mut request = create_receipt::v3::Request::new(
            room_id.to_owned(),
            create_receipt::v3::ReceiptType::Read,
            event_id.to_owned(),
        );
        request.thread = ReceiptThread::Unthreaded;
        self.send(request, Some(user_id)).await?;
        Ok(())
    }

    /// Moves `user_id`'s fully-read marker and read receipt to `event_id`.
    pub async fn read_markers(
        &self,
        room_id: &RoomId,
        event_id: &EventId,
        user_id: &UserId,
    ) -> Result<(), ClientError> {
        let mut request = set_read_marker::v3::Request::new(room_id.to_owned());
        request.fully_read = Some(event_id.to_owned());
        request.read_receipt = Some(event_id.to_owned());
        self.send(request, Some(user_id)).await?;
        Ok(())
    }

    pub async fn set_presence(
        &self,
        user_id: &UserId,
        presence: PresenceState,
        status_msg: Option<&str>,
    ) -> Result<(), ClientError> {
        let mut request = set_presence::v3::Request::new(user_id.to_owned(), presence);
        request.status_msg = status_msg.map(str::to_owned);
        self.send(request, Some(user_id)).await?;
        Ok(())
    }

    /// The users currently joined to a room.
    pub async fn joined_members(
        &self,
        room_id: &RoomId,
        as_user: Option<&UserId>,
    ) -> Result<Vec<OwnedUserId>, ClientError> {
        let response = self
            .send(
                joined_members::v3::Request::new(room_id.to_owned()),
                as_user,
            )
            .await?;
        Ok(response.joined.into_keys().collect())
    }

    /// The room's full current state.
    pub async fn room_state(
        &self,
        room_id: &RoomId,
        as_user: Option<&UserId>,
    ) -> Result<Vec<Raw<AnyStateEvent>>, ClientError> {
        let response = self
            .send(
                get_state_events::v3::Request::new(room_id.to_owned()),
                as_user,
            )
            .await?;
        Ok(response.room_state)
    }
}

/// JSON content as a ruma raw body.
fn raw_json<T>(content: &serde_json::Value, endpoint: &str) -> Result<Raw<T>, ClientError> {
    serde_json::value::to_raw_value(content)
        .map(Raw::from_json)
        .map_err(|e| ClientError::Build {
            endpoint: endpoint.to_owned(),
            detail: e.to_string(),
        })
}

/// The outcome of one failed attempt.
enum Attempt {
    Transient {
        error: ClientError,
        retry_after: Option<Duration>,
    },
    Final(ClientError),
}
