//! The `login`, `logout` and `cancel` bot commands and the login
//! conversation: the bot asks for the Instagram username, then the password
//! (and redacts it), runs the connector's browser login in the background,
//! relays its questions (a 2FA code) to the management room, validates the
//! cookies with `auth.validate`, asks `current_user` (a typed connector call)
//! which account they belong to, and stores the login sealed.
//!
//! A login in progress lives in memory ([`LoginFlows`]): a restart of the
//! bridge loses it, and the user starts again with `login` (a marker in the
//! store lets the bot say so, see [`super::login_waiting`]). Each question
//! times out after `login.question_timeout_ms`, stopping the browser.
//! Passwords, codes and cookies are never logged, never part of a reply.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ruma::events::room::message::RoomMessageEventContent;
use ruma::events::AnyMessageLikeEventContent;
use ruma::{EventId, OwnedRoomId, OwnedUserId, RoomId, TransactionId, UserId};
use tokio::sync::oneshot;

use super::bot::command_line;
use super::commands::{
    choose_login, describe_logins, Command, CommandContext, CommandError, CommandHandler,
    CommandRegistry, Reply,
};
use super::instagram::{LoginError, Logins};
use super::login_cookies;
use super::login_waiting::{Interruption, LoginMarkers, Marker, WaitingFor};
use super::supervisor::Supervisor;
use super::Bridge;
use crate::config::{Config, PermissionLevel};
use crate::connector::auth::{Credentials, DeviceIdentity};
use crate::connector::http::Connector;
use crate::connector::session::ConnectorError;
use crate::login::{
    failure_message, success_message, BrowserLogin, BrowserLoginError, BrowserLoginResult,
    LoginJob, Prompt,
};
use crate::matrix::client::HomeserverClient;
use crate::secrets::CredentialCipher;
use crate::store::{LoginRecord, Store};

/// What the bot says when there is no login to cancel or answer.
const NOTHING_IN_PROGRESS: &str = "You have no login in progress. \
    (A login that was in progress when the bridge restarted is lost: send `login` to start again.)";

/// What the bot says when the user did not answer a question in time.
pub const TIMED_OUT: &str =
    "The login timed out waiting for your answer; send `login` to start again.";

/// Registers `login`, `logout`, `list-logins` and `cancel`.
pub fn register(registry: &mut CommandRegistry) {
    registry.register(Command {
        name: "login",
        usage: "",
        description:
            "Log in to Instagram: I ask for your username, password and, if needed, your 2FA code.",
        min_args: 0,
        max_args: 0,
        required: PermissionLevel::User,
        handler: Arc::new(LoginCommand),
    });
    registry.register(Command {
        name: "logout",
        usage: "[username]",
        description: "Log out of Instagram and forget the stored login (with several logins, \
                      name the one to forget).",
        min_args: 0,
        max_args: 1,
        required: PermissionLevel::User,
        handler: Arc::new(LogoutCommand),
    });
    registry.register(Command {
        name: "list-logins",
        usage: "",
        description: "Show your Instagram logins and their state.",
        min_args: 0,
        max_args: 0,
        required: PermissionLevel::User,
        handler: Arc::new(ListLoginsCommand),
    });
    registry.register(Command {
        name: "cancel",
        usage: "",
        description: "Stop the login in progress.",
        min_args: 0,
        max_args: 0,
        required: PermissionLevel::User,
        handler: Arc::new(CancelCommand),
    });
}

/// Logins in progress, by Matrix user id: at most one per user.
#[derive(Clone, Default)]
pub struct LoginFlows {
    flows: Arc<Mutex<HashMap<OwnedUserId, Flow>>>,
    next_id: Arc<AtomicU64>,
    /// Where each flow's state is persisted (none in unit tests).
    markers: Option<LoginMarkers>,
}

/// One login in progress; `id` tells a finished flow from a newer one of
/// the same user, `asked` the question it waits for from earlier ones.
struct Flow {
    id: u64,
    room_id: OwnedRoomId,
    stage: Stage,
    asked: u64,
}

enum Stage {
    /// Waiting for the username.
    Username,
    /// Waiting for the password of this username.
    Password { username: String },
    /// The browser login runs in a background task.
    Running {
        /// Stops the runner and its browser.
        cancel: oneshot::Sender<()>,
        /// A question of the login steps waiting for the user's next message.
        question: Option<oneshot::Sender<String>>,
    },
}

impl Stage {
    /// Whether the user's next message answers this stage.
    fn waits_for_input(&self) -> bool {
        self.waiting_for() != WaitingFor::Nothing
    }

    fn waiting_for(&self) -> WaitingFor {
        match self {
            Stage::Username => WaitingFor::Username,
            Stage::Password { .. } => WaitingFor::Password,
            Stage::Running {
                question: Some(_), ..
            } => WaitingFor::Answer,
            Stage::Running { question: None, .. } => WaitingFor::Nothing,
        }
    }
}

impl LoginFlows {
    /// Logins in progress whose state is persisted in `store`.
    pub fn persisted(store: Store) -> LoginFlows {
        LoginFlows {
            markers: Some(LoginMarkers::new(store)),
            ..LoginFlows::default()
        }
    }

    pub(super) fn markers(&self) -> Option<&LoginMarkers> {
        self.markers.as_ref()
    }

    fn next_number(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Persists the state of flow `id` of `user`, if it is still theirs.
    async fn persist(&self, user: &UserId, id: u64) {
        let Some(markers) = &self.markers else { return };
        markers
            .write(user, || {
                let flows = self.lock();
                let flow = flows.get(user).filter(|flow| flow.id == id)?;
                Some(Marker {
                    room_id: flow.room_id.clone(),
                    waiting_for: flow.stage.waiting_for(),
                })
            })
            .await;
    }

    /// Forgets the persisted state of `user`'s login once it is over (in
    /// the background: `cancel` and `finish` are not async).
    fn forget_persisted(&self, user: &UserId) {
        let Some(markers) = self.markers.clone() else {
            return;
        };
        let flows = self.clone();
        let user = user.to_owned();
        tokio::spawn(async move {
            markers.delete(&user, || flows.in_progress(&user)).await;
        });
    }

    /// Ends flow `id` of `user` if it still waits for the answer to
    /// question `asked`, stopping its runner; returns what it waited for,
    /// `None` if it moved on.
    fn expire(&self, user: &UserId, id: u64, asked: u64) -> Option<WaitingFor> {
        let flow = {
            let mut flows = self.lock();
            let waiting = flows.get(user).is_some_and(|flow| {
                flow.id == id && flow.asked == asked && flow.stage.waits_for_input()
            });
            waiting.then(|| flows.remove(user)).flatten()?
        };
        let waited_for = flow.stage.waiting_for();
        if let Stage::Running { cancel, .. } = flow.stage {
            // An error means the runner is already done.
            let _ = cancel.send(());
        }
        // A password or code sent late is redacted, not taken for a command.
        if let Some(markers) = self.markers.as_ref().filter(|_| waited_for.is_secret()) {
            markers.arm_redact_next(user.to_owned(), flow.room_id, Interruption::TimedOut);
        }
        self.forget_persisted(user);
        Some(waited_for)
    }

    /// Gives up on flow `id` of `user` when question `asked` is not answered
    /// within `timeout`, telling the user through `notifier`.
    fn time_out_question(
        &self,
        notifier: RoomNotifier,
        user: &UserId,
        id: u64,
        asked: u64,
        timeout: Duration,
    ) {
        let flows = self.clone();
        let user = user.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if flows.expire(&user, id, asked).is_some() {
                tracing::info!(%user, "login question timed out");
                notifier.send(&Reply::text(TIMED_OUT)).await;
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OwnedUserId, Flow>> {
        // A panic while holding the lock leaves the map consistent (every
        // change is a single insert, remove or field update).
        self.flows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `user` has a login in progress.
    pub fn in_progress(&self, user: &UserId) -> bool {
        self.lock().contains_key(user)
    }

    /// Whether `user` has a login in progress that talks in `room_id`.
    pub fn in_progress_in(&self, user: &UserId, room_id: &RoomId) -> bool {
        self.lock()
            .get(user)
            .is_some_and(|flow| flow.room_id == room_id)
    }

    /// Stops the login of `user` if it talks in `room_id` (see [`Self::cancel`]);
    /// false if there was none there.
    pub fn cancel_in(&self, user: &UserId, room_id: &RoomId) -> bool {
        self.in_progress_in(user, room_id) && self.cancel(user)
    }

    /// Removes the flow `id` of `user` when it ends; false if it is no longer
    /// the user's flow (it was cancelled).
    fn finish(&self, user: &UserId, id: u64) -> bool {
        let finished = {
            let mut flows = self.lock();
            flows
                .get(user)
                .is_some_and(|flow| flow.id == id)
                .then(|| flows.remove(user))
                .is_some()
        };
        if finished {
            self.forget_persisted(user);
        }
        finished
    }

    /// Stops the login of `user`; false if there was none. A running login
    /// stops its runner, which closes the browser; its task ends without a
    /// word and stores nothing.
    pub fn cancel(&self, user: &UserId) -> bool {
        let Some(flow) = self.lock().remove(user) else {
            return false;
        };
        if let Stage::Running { cancel, .. } = flow.stage {
            // An error means the runner is already done; the task sees the
            // flow gone and stores nothing.
            let _ = cancel.send(());
        }
        self.forget_persisted(user);
        true
    }

    /// Registers the channel that takes the user's answer to a question of
    /// flow `id`; returns the question's number, or `None` if the flow was
    /// cancelled meanwhile.
    fn expect_answer(
        &self,
        user: &UserId,
        id: u64,
        answer: oneshot::Sender<String>,
    ) -> Option<u64> {
        let asked = self.next_number();
        let mut flows = self.lock();
        match flows.get_mut(user) {
            Some(Flow {
                id: current,
                stage: Stage::Running { question, .. },
                asked: flow_asked,
                ..
            }) if *current == id => {
                *question = Some(answer);
                *flow_asked = asked;
                Some(asked)
            }
            _ => None,
        }
    }
}

/// Handles a message of `sender` in their management room when a login
/// waits for it: the message is the answer, not a command (`cancel` still
/// is one). Returns the bot's reply, or `None` when the message is not an
/// answer. Never asks the homeserver to resend the transaction: a resent
/// password must not reach the command parser.
pub async fn answer_waiting_flow(
    bridge: &Bridge,
    room_id: &RoomId,
    sender: &UserId,
    event_id: &EventId,
    body: &str,
) -> Option<Reply> {
    let prefix = bridge.config.bot.command_prefix.as_str();
    // `cancel` stops the login; a cookie paste replaces it (and must not be
    // typed into Instagram's password field).
    let is_command = command_line(body, prefix, true).is_some_and(|line| {
        line.trim().eq_ignore_ascii_case("cancel") || login_cookies::paste_of(line).is_some()
    });
    if is_command {
        return None;
    }
    let flows = &bridge.login_flows;
    let (flow_id, answered) = {
        let mut map = flows.lock();
        let flow = map
            .get_mut(sender)
            .filter(|flow| flow.stage.waits_for_input())?;
        let flow_id = flow.id;
        let answered = match &mut flow.stage {
            Stage::Username => {
                let username = body.trim().trim_start_matches('@');
                if username.is_empty() || username.contains(char::is_whitespace) {
                    return Some(Reply::text(
                        "That does not look like an Instagram username. Send your username again, or `cancel`.",
                    ));
                }
                let username = username.to_owned();
                let reply = Reply::text(format!(
                    "Now send the password of @{username}. I will redact your message as soon as I have read it."
                ));
                flow.stage = Stage::Password { username };
                flow.asked = flows.next_number();
                Answered::Username {
                    reply,
                    asked: flow.asked,
                    room_id: flow.room_id.clone(),
                }
            }
            Stage::Password { username } => {
                let username = username.clone();
                let context = FlowContext::of(bridge, sender, flow.id, flow.room_id.clone());
                let (cancel, cancelled) = oneshot::channel();
                tokio::spawn(context.run(username.clone(), body.to_owned(), cancelled));
                flow.stage = Stage::Running {
                    cancel,
                    question: None,
                };
                Answered::Password { username }
            }
            Stage::Running { question, .. } => {
                let answer = question.take()?;
                // A closed channel means the runner gave up (timeout): its
                // failure message follows.
                let _ = answer.send(body.trim().to_owned());
                Answered::Question
            }
        };
        (flow_id, answered)
    };
    flows.persist(sender, flow_id).await;
    let text = match answered {
        Answered::Username {
            reply,
            asked,
            room_id,
        } => {
            let notifier = RoomNotifier::of(bridge, room_id);
            flows.time_out_question(notifier, sender, flow_id, asked, question_timeout(bridge));
            return Some(reply);
        }
        Answered::Password { username } => {
            format!("Logging in to Instagram as @{username}, this can take a minute.")
        }
        Answered::Question => "Thanks, sending your answer to Instagram.".to_owned(),
    };
    let redaction = redact_secret(bridge, room_id, event_id).await;
    Some(Reply::text(format!("{text}{redaction}")))
}

/// What the user's message answered.
enum Answered {
    /// The username: the password is asked next.
    Username {
        reply: Reply,
        asked: u64,
        room_id: OwnedRoomId,
    },
    Password {
        username: String,
    },
    Question,
}

/// How long the bot waits for each answer.
fn question_timeout(bridge: &Bridge) -> Duration {
    Duration::from_millis(bridge.config.login.question_timeout_ms)
}

/// Sends the bot's notices to one room.
#[derive(Clone)]
struct RoomNotifier {
    client: HomeserverClient,
    room_id: OwnedRoomId,
    bot: OwnedUserId,
}

impl RoomNotifier {
    fn of(bridge: &Bridge, room_id: OwnedRoomId) -> RoomNotifier {
        RoomNotifier {
            client: bridge.client.clone(),
            room_id,
            bot: bridge.namespace.bot().to_owned(),
        }
    }

    /// Sends a notice; a failure is only logged (there is nobody else to tell).
    async fn send(&self, reply: &Reply) {
        let content = AnyMessageLikeEventContent::RoomMessage(
            RoomMessageEventContent::notice_html(reply.plain.clone(), reply.html.clone()),
        );
        let txn_id = TransactionId::new();
        if let Err(e) = self
            .client
            .send_message(&self.room_id, &txn_id, &content, None, Some(&self.bot))
            .await
        {
            tracing::warn!(error = %e, room_id = %self.room_id, "cannot send a login message");
        }
    }
}

/// Redacts the user's message holding a secret; returns what to add to the
/// reply (asking the user to delete it when the homeserver refused).
pub(super) async fn redact_secret(
    bridge: &Bridge,
    room_id: &RoomId,
    event_id: &EventId,
) -> &'static str {
    let txn_id = TransactionId::new();
    let redacted = bridge
        .client
        .redact(
            room_id,
            event_id,
            &txn_id,
            Some("it holds an Instagram login secret"),
            Some(bridge.namespace.bot()),
        )
        .await;
    match redacted {
        Ok(_) => " (I redacted your message.)",
        Err(e) => {
            tracing::warn!(error = %e, %room_id, "cannot redact a login secret");
            "\nI could not redact your message: please delete it yourself."
        }
    }
}

/// What the background login task needs from the bridge.
struct FlowContext {
    flows: LoginFlows,
    id: u64,
    user: OwnedUserId,
    notifier: RoomNotifier,
    question_timeout: Duration,
    config: Arc<Config>,
    store: Store,
    connector: Connector,
    runner: BrowserLogin,
    /// Starts the login's poller once the login is saved.
    supervisor: Arc<Supervisor>,
}

/// Cookies `auth.validate` accepted (from the browser or a paste), with the
/// account Instagram says they belong to.
pub(super) struct VerifiedLogin {
    credentials: Credentials,
    result: BrowserLoginResult,
    /// The account Instagram confirmed: its id and username.
    user_id: String,
    username: String,
}

/// Validates `cookies` with the spec's `auth.validate` and asks the typed
/// `current_user` whose they are; `extracted` are the values a browser
/// login read from the page, `typed_username` what the user typed. Used by
/// every way of logging in, so they all store the same thing.
pub(super) async fn verify_cookies(
    target: &SaveTarget<'_>,
    user: &UserId,
    cookies: BTreeMap<String, String>,
    mut extracted: BTreeMap<String, String>,
    typed_username: Option<String>,
) -> Result<VerifiedLogin, ConnectorError> {
    let device = device_for(target, user, &cookies).await;
    let connector = target.connector;
    let mut credentials = Credentials::with_device(cookies.clone(), device);
    connector.validate(&mut credentials).await?;
    // The account Instagram says the session belongs to, typed by the
    // connector (the bridge never reads the platform's JSON).
    let me = connector.current_user(&mut credentials).await?;
    let confirmed = me
        .handle
        .or_else(|| extracted.get("username").cloned())
        .or(typed_username)
        .unwrap_or_else(|| "?".to_owned());
    extracted.insert("username".to_owned(), confirmed.clone());
    Ok(VerifiedLogin {
        credentials,
        result: BrowserLoginResult { cookies, extracted },
        user_id: me.id,
        username: confirmed,
    })
}

/// The device identity to validate `cookies` with, so that the session
/// sees one device from its first request: the identity of the user's login
/// to that account when there is one (it is kept), else a new one.
async fn device_for(
    target: &SaveTarget<'_>,
    user: &UserId,
    cookies: &BTreeMap<String, String>,
) -> DeviceIdentity {
    let Ok(key) = target.config.credential_key() else {
        // Saving will say the key is unusable.
        return DeviceIdentity::random();
    };
    let account = Credentials::new(cookies.clone())
        .user_id()
        .map(str::to_owned);
    Logins::new(target.store.clone(), CredentialCipher::new(&key))
        .device_for(user.as_str(), account.as_deref())
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, %user, "cannot read the login's device identity: a new one");
            DeviceIdentity::random()
        })
}

/// Why a verified login could not be stored; holds no secret.
#[derive(Debug, thiserror::Error)]
pub(super) enum SaveError {
    #[error("the login worked but could not be saved: {0}")]
    Store(LoginError),
    #[error(
        "the login worked but could not be saved: the bridge's credential key is unusable ({0})"
    )]
    Key(String),
}

/// Stores a verified login of `user` sealed, starts its poller and returns
/// the spec's success message.
pub(super) async fn save_verified(
    bridge: &SaveTarget<'_>,
    user: &UserId,
    verified: VerifiedLogin,
) -> Result<String, SaveError> {
    let VerifiedLogin {
        credentials,
        result,
        user_id,
        username,
    } = verified;
    let key = bridge
        .config
        .credential_key()
        .map_err(|e| SaveError::Key(e.to_string()))?;
    let logins = Logins::new(bridge.store.clone(), CredentialCipher::new(&key));
    let login = logins
        .save_new(
            user.as_str(),
            &user_id,
            Some(username.clone()),
            &credentials,
        )
        .await
        .map_err(SaveError::Store)?;
    bridge.supervisor.start(&login.id);
    Ok(success_message(bridge.connector.spec(), &result)
        .unwrap_or_else(|| format!("Connected to Instagram as @{username}!")))
}

/// What storing a login needs of the bridge (the background login task
/// holds its own copies).
pub(super) struct SaveTarget<'a> {
    pub config: &'a Config,
    pub store: &'a Store,
    pub supervisor: &'a Supervisor,
    pub connector: &'a Connector,
}

impl<'a> SaveTarget<'a> {
    pub fn of(bridge: &'a Bridge) -> SaveTarget<'a> {
        SaveTarget {
            config: &bridge.config,
            store: &bridge.store,
            supervisor: &bridge.supervisor,
            connector: &bridge.connector,
        }
    }
}

/// Why a login did not succeed; the text is for the user and holds no secret.
#[derive(Debug, thiserror::Error)]
enum FlowError {
    #[error("{message}")]
    Browser {
        message: String,
        source: BrowserLoginError,
    },
    #[error("Instagram accepted the login, but the session does not work: {0}")]
    Validate(String),
    #[error(transparent)]
    Save(SaveError),
}

impl FlowContext {
    fn of(bridge: &Bridge, user: &UserId, id: u64, room_id: OwnedRoomId) -> FlowContext {
        FlowContext {
            flows: bridge.login_flows.clone(),
            id,
            user: user.to_owned(),
            notifier: RoomNotifier::of(bridge, room_id),
            question_timeout: question_timeout(bridge),
            config: bridge.config.clone(),
            store: bridge.store.clone(),
            connector: bridge.connector.clone(),
            runner: bridge.browser_login.clone(),
            supervisor: bridge.supervisor.clone(),
        }
    }

    /// Runs the login and tells the user how it ended (unless it was cancelled).
    async fn run(self, username: String, password: String, cancelled: oneshot::Receiver<()>) {
        tracing::info!(user = %self.user, "Instagram login started");
        let verified = self.log_in(username, password, cancelled).await;
        // Checked before saving: a cancelled login stores nothing.
        if !self.flows.finish(&self.user, self.id) {
            tracing::info!(user = %self.user, "Instagram login cancelled");
            return;
        }
        let outcome = match verified {
            Ok(verified) => self.save(verified).await,
            Err(error) => Err(error),
        };
        let text = match outcome {
            Ok(message) => {
                tracing::info!(user = %self.user, "Instagram login succeeded");
                message
            }
            Err(error) => {
                match &error {
                    FlowError::Browser { source, .. } => {
                        tracing::warn!(user = %self.user, error = %source, "Instagram login failed");
                    }
                    other => {
                        tracing::warn!(user = %self.user, error = %other, "Instagram login failed")
                    }
                }
                format!("Login failed: {error}")
            }
        };
        self.notify(&Reply::text(text)).await;
    }

    /// Runs the browser login and validates its cookies.
    async fn log_in(
        &self,
        username: String,
        password: String,
        cancelled: oneshot::Receiver<()>,
    ) -> Result<VerifiedLogin, FlowError> {
        let spec = self.connector.spec();
        let browser_failed = |source: BrowserLoginError| FlowError::Browser {
            message: failure_message(spec, &source),
            source,
        };
        let inputs = BTreeMap::from([
            ("username".to_owned(), username.clone()),
            ("password".to_owned(), password),
        ]);
        let job = LoginJob::from_spec(spec, self.connector.base_urls(), inputs)
            .map_err(browser_failed)?;
        // Only a sent cancel stops the runner, not a dropped sender.
        let cancel = async {
            if cancelled.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let result = self
            .runner
            .run_cancellable(job, |prompt| self.ask(prompt), cancel)
            .await
            .map_err(browser_failed)?;
        let target = SaveTarget {
            config: &self.config,
            store: &self.store,
            supervisor: &self.supervisor,
            connector: &self.connector,
        };
        verify_cookies(
            &target,
            &self.user,
            result.cookies,
            result.extracted,
            Some(username),
        )
        .await
        .map_err(|e| FlowError::Validate(e.to_string()))
    }

    /// Stores the login sealed; returns the spec's success message.
    async fn save(&self, verified: VerifiedLogin) -> Result<String, FlowError> {
        let target = SaveTarget {
            config: &self.config,
            store: &self.store,
            supervisor: &self.supervisor,
            connector: &self.connector,
        };
        save_verified(&target, &self.user, verified)
            .await
            .map_err(FlowError::Save)
    }

    /// Relays a question of the login steps to the room and waits for the
    /// user's next message; `None` when the flow was cancelled.
    async fn ask(&self, prompt: Prompt) -> Option<String> {
        let (answer, answered) = oneshot::channel();
        let asked = self.flows.expect_answer(&self.user, self.id, answer)?;
        self.flows.persist(&self.user, self.id).await;
        self.flows.time_out_question(
            self.notifier.clone(),
            &self.user,
            self.id,
            asked,
            self.question_timeout,
        );
        let text = if prompt.name == "two_factor_code" {
            format!(
                "Instagram asks for your two-factor code. {} Send the 6-digit code here; I will redact your message.",
                prompt.message
            )
        } else {
            format!(
                "Instagram asks: {} Send your answer here; I will redact your message.",
                prompt.message
            )
        };
        self.notify(&Reply::text(format!(
            "{text} (Send `cancel` to stop the login.)"
        )))
        .await;
        answered.await.ok()
    }

    async fn notify(&self, reply: &Reply) {
        self.notifier.send(reply).await;
    }
}

struct LoginCommand;

#[async_trait]
impl CommandHandler for LoginCommand {
    async fn run(&self, ctx: &CommandContext<'_>, _args: &[String]) -> Result<Reply, CommandError> {
        if !ctx.in_management_room {
            return Ok(Reply::text(
                "Log in from your management room (a direct chat with me), so your password stays out of shared rooms.",
            ));
        }
        let logins = ctx.sender_logins().await?;
        // Before asking for anything: without the runner no answer can help.
        if let Err(error) = ctx.bridge.browser_login.check_installed() {
            return Ok(Reply::text(format!(
                "Logging in is not available on this bridge: {error}. \
                 Ask the bridge's operator to install it."
            )));
        }
        let flows = &ctx.bridge.login_flows;
        let (id, asked) = {
            let mut map = flows.lock();
            if map.contains_key(ctx.sender) {
                return Ok(Reply::text(
                    "A login is already in progress: wait for it to finish, or send `cancel`.",
                ));
            }
            let (id, asked) = (flows.next_number(), flows.next_number());
            map.insert(
                ctx.sender.to_owned(),
                Flow {
                    id,
                    room_id: ctx.room_id.to_owned(),
                    stage: Stage::Username,
                    asked,
                },
            );
            (id, asked)
        };
        flows.persist(ctx.sender, id).await;
        let notifier = RoomNotifier::of(ctx.bridge, ctx.room_id.to_owned());
        let timeout = question_timeout(ctx.bridge);
        flows.time_out_question(notifier, ctx.sender, id, asked, timeout);
        let mut text = String::new();
        if !logins.is_empty() {
            text.push_str(&format!(
                "You are logged in as {}. Logging in to another account adds a login; to one of \
                 these, reconnects it (same chats).\n",
                usernames(&logins)
            ));
        }
        text.push_str(
            "Send your Instagram username. (Send `cancel` at any time to stop the login.)",
        );
        Ok(Reply::text(text))
    }
}

/// `@a, @b`: the usernames of logins.
fn usernames(logins: &[LoginRecord]) -> String {
    logins
        .iter()
        .map(|login| format!("@{}", login.username.as_deref().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(", ")
}

struct LogoutCommand;

#[async_trait]
impl CommandHandler for LogoutCommand {
    async fn run(&self, ctx: &CommandContext<'_>, args: &[String]) -> Result<Reply, CommandError> {
        let logins = ctx.sender_logins().await?;
        if logins.is_empty() {
            let mut text = "You are not logged in to Instagram.".to_owned();
            if ctx.bridge.login_flows.in_progress(ctx.sender) {
                text.push_str(" A login is in progress: send `cancel` to stop it.");
            }
            return Ok(Reply::text(text));
        }
        let choice = args.first().or(ctx.login_choice.as_ref());
        let login = choose_login(
            logins,
            choice.map(String::as_str),
            &ctx.invocation("list-logins"),
        )?;
        ctx.bridge.supervisor.stop(&login.id);
        ctx.bridge
            .store
            .delete_login(&login.id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot delete the login");
                CommandError::Failed("the bridge's database is unavailable".to_owned())
            })?;
        tracing::info!(user = %ctx.sender, login = %login.id, "logged out of Instagram");
        let username = login.username.unwrap_or_else(|| "?".to_owned());
        Ok(Reply::text(format!("Logged out of @{username}.")))
    }
}

struct ListLoginsCommand;

#[async_trait]
impl CommandHandler for ListLoginsCommand {
    async fn run(&self, ctx: &CommandContext<'_>, _args: &[String]) -> Result<Reply, CommandError> {
        let lines = describe_logins(ctx).await?;
        if lines.is_empty() {
            return Ok(Reply::text(format!(
                "You are not logged in to Instagram. Send `{}` to log in.",
                ctx.invocation("login")
            )));
        }
        let mut text = String::from("Your Instagram logins:");
        for (number, line) in lines.iter().enumerate() {
            text.push_str(&format!("\n{}. {line}", number + 1));
        }
        Ok(Reply::text(text))
    }
}

struct CancelCommand;

#[async_trait]
impl CommandHandler for CancelCommand {
    async fn run(&self, ctx: &CommandContext<'_>, _args: &[String]) -> Result<Reply, CommandError> {
        if ctx.bridge.login_flows.cancel(ctx.sender) {
            tracing::info!(user = %ctx.sender, "login cancelled by the user");
            Ok(Reply::text("Login cancelled."))
        } else {
            Ok(Reply::text(NOTHING_IN_PROGRESS))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::{room_id, user_id};

    fn start(flows: &LoginFlows, user: &UserId, stage: Stage) -> u64 {
        let id = flows.next_id.fetch_add(1, Ordering::Relaxed);
        let flow = Flow {
            id,
            room_id: room_id!("!dm:example.org").to_owned(),
            stage,
            asked: id,
        };
        flows.lock().insert(user.to_owned(), flow);
        id
    }

    fn running() -> (Stage, oneshot::Receiver<()>) {
        let (cancel, cancelled) = oneshot::channel();
        let stage = Stage::Running {
            cancel,
            question: None,
        };
        (stage, cancelled)
    }

    #[tokio::test]
    async fn a_cancelled_flow_stops_its_runner_and_is_not_finished_or_asked() {
        let flows = LoginFlows::default();
        let alice = user_id!("@alice:example.org");
        let (stage, cancelled) = running();
        let id = start(&flows, alice, stage);
        assert!(flows.in_progress(alice));

        assert!(flows.cancel(alice));
        assert!(cancelled.await.is_ok(), "the runner is told to stop");
        assert!(!flows.in_progress(alice));
        assert!(!flows.cancel(alice), "nothing left to cancel");
        assert!(!flows.finish(alice, id));
        let (answer, _) = oneshot::channel();
        assert!(flows.expect_answer(alice, id, answer).is_none());
    }

    #[tokio::test]
    async fn cancelling_during_a_question_leaves_the_answer_unsent() {
        let flows = LoginFlows::default();
        let alice = user_id!("@alice:example.org");
        let (stage, cancelled) = running();
        let id = start(&flows, alice, stage);
        let (answer, answered) = oneshot::channel();
        assert!(flows.expect_answer(alice, id, answer).is_some());
        assert!(flows.lock()[alice].stage.waits_for_input());

        assert!(flows.cancel(alice));
        assert!(answered.await.is_err());
        assert!(cancelled.await.is_ok());
    }

    #[tokio::test]
    async fn cancelling_in_a_room_stops_only_a_login_talking_there() {
        let flows = LoginFlows::default();
        let alice = user_id!("@alice:example.org");
        let (stage, cancelled) = running();
        start(&flows, alice, stage);
        let elsewhere = room_id!("!elsewhere:example.org");
        assert!(!flows.in_progress_in(alice, elsewhere));
        assert!(!flows.cancel_in(alice, elsewhere));
        assert!(flows.in_progress(alice));

        let here = room_id!("!dm:example.org");
        assert!(flows.in_progress_in(alice, here));
        assert!(flows.cancel_in(alice, here));
        assert!(cancelled.await.is_ok(), "the runner is told to stop");
        assert!(!flows.in_progress(alice));
    }

    #[test]
    fn an_old_flow_does_not_end_a_newer_one() {
        let flows = LoginFlows::default();
        let alice = user_id!("@alice:example.org");
        let old = start(&flows, alice, Stage::Username);
        flows.cancel(alice);
        let new = start(&flows, alice, Stage::Username);
        assert!(!flows.finish(alice, old));
        assert!(flows.in_progress(alice));
        assert!(flows.finish(alice, new));
        assert!(!flows.in_progress(alice));
    }

    #[tokio::test]
    async fn an_unanswered_question_expires_and_stops_the_runner() {
        let flows = LoginFlows::default();
        let alice = user_id!("@alice:example.org");
        let (stage, cancelled) = running();
        let id = start(&flows, alice, stage);
        let (answer, answered) = oneshot::channel();
        let asked = flows.expect_answer(alice, id, answer).unwrap();
        assert_eq!(flows.expire(alice, id, asked + 1), None, "another question");
        assert!(flows.in_progress(alice));

        assert_eq!(flows.expire(alice, id, asked), Some(WaitingFor::Answer));
        assert!(!flows.in_progress(alice));
        assert!(cancelled.await.is_ok(), "the runner is told to stop");
        assert!(answered.await.is_err());
        assert_eq!(flows.expire(alice, id, asked), None, "expired once");
    }

    #[test]
    fn an_answered_question_does_not_expire() {
        let flows = LoginFlows::default();
        let alice = user_id!("@alice:example.org");
        let (stage, _cancelled) = running();
        let id = start(&flows, alice, stage);
        let (answer, _answered) = oneshot::channel();
        let asked = flows.expect_answer(alice, id, answer).unwrap();
        if let Stage::Running { question, .. } = &mut flows.lock().get_mut(alice).unwrap().stage {
            question.take();
        }
        assert_eq!(
            flows.expire(alice, id, asked),
            None,
            "the browser works on the answer"
        );
        assert!(flows.in_progress(alice));
    }
}
