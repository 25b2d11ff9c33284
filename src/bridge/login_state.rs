//! A login's state (connected, session expired, challenge or checkpoint
//! required, rate limited, unreachable): the typed form of `logins.state`,
//! which Instagram failures lead to which state, the one way a login is moved
//! between states (one notice to the owner's management room per real
//! change, saying what to do), and how a login's state and last successful
//! poll are described to the user (`ping`, `list-logins`).

use chrono::{DateTime, Utc};
use ruma::events::room::message::RoomMessageEventContent;
use ruma::events::AnyMessageLikeEventContent;
use ruma::{OwnedTransactionId, RoomId};

use super::commands::Reply;
use super::Bridge;
use crate::connector::session::ConnectorError;
use crate::store::{LoginRecord, StoreError};

/// Where a login stands with Instagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginState {
    /// Polling and sending work.
    Connected,
    /// Instagram ended the session (`login_required`, `user_has_logged_out`,
    /// a keep-alive's `mark_disconnected`): the user must log in again.
    SessionExpired,
    /// Instagram wants the user to confirm it is them, then log in again.
    ChallengeRequired,
    /// The account is locked until the user clears a checkpoint in the app.
    CheckpointRequired,
    /// Instagram is rate-limiting the account: requests wait, nothing is lost.
    RateLimited,
    /// Instagram cannot be reached (timeouts, 5xx, connection failures):
    /// the bridge keeps retrying.
    Unreachable,
}

impl LoginState {
    /// The value stored in `logins.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginState::Connected => "connected",
            LoginState::SessionExpired => "session_expired",
            LoginState::ChallengeRequired => "challenge_required",
            LoginState::CheckpointRequired => "checkpoint_required",
            LoginState::RateLimited => "rate_limited",
            LoginState::Unreachable => "unreachable",
        }
    }

    /// Reads a stored state. Values written by older versions keep their
    /// meaning (`bad_credentials` and `disconnected` were an ended session);
    /// anything unknown counts as connected, so the next poll finds out.
    pub fn parse(stored: &str) -> LoginState {
        match stored {
            "session_expired" | "bad_credentials" | "disconnected" | "logged_out" => {
                LoginState::SessionExpired
            }
            "challenge_required" => LoginState::ChallengeRequired,
            "checkpoint_required" => LoginState::CheckpointRequired,
            "rate_limited" => LoginState::RateLimited,
            "unreachable" => LoginState::Unreachable,
            _ => LoginState::Connected,
        }
    }

    /// The state of a stored login.
    pub fn of(login: &LoginRecord) -> LoginState {
        LoginState::parse(&login.state)
    }

    /// Whether only the user can get the login going again: its poller is
    /// stopped and its outgoing messages are held until they log in.
    pub fn needs_user(self) -> bool {
        matches!(
            self,
            LoginState::SessionExpired
                | LoginState::ChallengeRequired
                | LoginState::CheckpointRequired
        )
    }

    /// The state an Instagram failure points to, if any. A single transient
    /// failure is not yet `Unreachable`: the caller decides after a run of them.
    pub fn from_error(error: &ConnectorError) -> Option<LoginState> {
        match error {
            ConnectorError::SessionExpired { .. } | ConnectorError::IncompleteLogin { .. } => {
                Some(LoginState::SessionExpired)
            }
            ConnectorError::ChallengeRequired { .. } => Some(LoginState::ChallengeRequired),
            ConnectorError::CheckpointRequired { .. } => Some(LoginState::CheckpointRequired),
            ConnectorError::RateLimited { .. } => Some(LoginState::RateLimited),
            ConnectorError::Transient { .. } => Some(LoginState::Unreachable),
            _ => None,
        }
    }

    /// The state's name for the user.
    pub fn label(self) -> &'static str {
        match self {
            LoginState::Connected => "connected",
            LoginState::SessionExpired => "session expired",
            LoginState::ChallengeRequired => "security check required",
            LoginState::CheckpointRequired => "account locked by a checkpoint",
            LoginState::RateLimited => "rate limited",
            LoginState::Unreachable => "Instagram unreachable",
        }
    }
}

/// The notice the owner gets when their login moves from `from` to `to`;
/// `None` when the change needs no word (a fresh login is confirmed by the
/// login command itself). `until` is when a rate limit's pause ends.
pub fn notice(from: LoginState, to: LoginState, until: Option<DateTime<Utc>>) -> Option<String> {
    const STOPPED: &str = "Bridging of your Instagram messages has stopped.";
    const HELD: &str = "Messages you send meanwhile wait and go out once you are logged in again.";
    let text = match to {
        LoginState::Connected => match from {
            LoginState::RateLimited | LoginState::Unreachable => {
                "Reconnected to Instagram: bridging is back to normal.".to_owned()
            }
            _ => return None,
        },
        LoginState::SessionExpired => format!(
            "{STOPPED} Your Instagram session has ended (logged out or expired). \
             Send `login` or `login-cookies` here to log in again. {HELD}"
        ),
        LoginState::ChallengeRequired => format!(
            "{STOPPED} Instagram wants to confirm it's you. Open the Instagram app or website, \
             complete the security check, then send `login` here to reconnect. {HELD}"
        ),
        LoginState::CheckpointRequired => format!(
            "{STOPPED} Instagram has locked your account behind a checkpoint; it stays locked \
             until you clear it. Open the Instagram app or website, follow its steps, then send \
             `login` here to reconnect. {HELD}"
        ),
        LoginState::RateLimited => {
            let until = until
                .map(|at| format!("until {}", at.format("%H:%M UTC")))
                .unwrap_or_else(|| "for a few minutes".to_owned());
            format!(
                "Instagram is rate-limiting your account: requests to Instagram are paused \
                 {until}. Nothing is lost: your messages wait and go out then, and new ones \
                 from Instagram arrive after the pause. There is nothing you need to do."
            )
        }
        LoginState::Unreachable => "Instagram cannot be reached right now; the bridge keeps \
             retrying. Nothing is lost and there is nothing you need to do: messages arrive \
             and go out once Instagram answers again."
            .to_owned(),
    };
    Some(text)
}

/// Moves `mxid`'s login to `to`. Only when the state actually changed (so
/// only the first of several workers noticing the same thing), the owner
/// gets one notice in their management room saying what to do; returns
/// whether it changed. `until` is when a rate limit's pause ends. Failures
/// are logged.
pub async fn move_login(
    bridge: &Bridge,
    mxid: &str,
    to: LoginState,
    until: Option<DateTime<Utc>>,
) -> bool {
    // The stored string is replaced only if nobody changed it in between, so
    // two workers moving the login at once send one notice.
    for _ in 0..3 {
        let login = match bridge.store.login(mxid).await {
            Ok(Some(login)) => login,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!(login = %mxid, error = %e, "cannot read the login's state");
                return false;
            }
        };
        let from = LoginState::of(&login);
        if from == to {
            return false;
        }
        match bridge
            .store
            .replace_login_state(mxid, &login.state, to.as_str())
            .await
        {
            Ok(true) => {
                tracing::warn!(login = %mxid, from = from.as_str(), to = to.as_str(), "login state changed");
                if let Some(text) = notice(from, to, until) {
                    if let Err(e) = notify(bridge, mxid, to, &text).await {
                        tracing::warn!(login = %mxid, error = %e, "cannot tell the user their login's state");
                    }
                }
                return true;
            }
            Ok(false) => continue,
            Err(e) => {
                tracing::error!(login = %mxid, error = %e, "cannot change the login's state");
                return false;
            }
        }
    }
    false
}

/// Moves `mxid`'s login to the state `error` points to when that state
/// needs the user (session expired, challenge, checkpoint); returns the
/// state it is in then, or `None` when the error does not need the user.
pub async fn login_needs_user(
    bridge: &Bridge,
    mxid: &str,
    error: &ConnectorError,
) -> Option<LoginState> {
    let state = LoginState::from_error(error).filter(|state| state.needs_user())?;
    tracing::warn!(login = %mxid, state = state.as_str(), error = %error, "the login needs the user");
    move_login(bridge, mxid, state, None).await;
    Some(state)
}

/// One line on a login for the user: its state and when it was last polled
/// successfully (`last_poll`), at `now`.
pub fn describe(
    login: &LoginRecord,
    last_poll: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> String {
    let state = LoginState::of(login).label();
    let who = match &login.username {
        Some(name) => format!("Logged in as @{name} ({state})."),
        None => format!("Your Instagram login: {state}."),
    };
    let polled = match last_poll {
        Some(at) => format!(
            "Last successful poll {} ({}).",
            at.format("%Y-%m-%d %H:%M:%S UTC"),
            ago(now - at)
        ),
        None => "No successful poll yet.".to_owned(),
    };
    format!("{who} {polled}")
}

/// [`describe`] for a stored login now, its last successful poll read from
/// the store.
pub async fn describe_stored(bridge: &Bridge, login: &LoginRecord) -> Result<String, StoreError> {
    let last_poll = bridge
        .store
        .last_poll_success(&login.mxid)
        .await?
        .and_then(DateTime::from_timestamp_millis);
    Ok(describe(login, last_poll, Utc::now()))
}

/// "just now", "1 minute ago", "5 hours ago", ...
fn ago(elapsed: chrono::TimeDelta) -> String {
    let seconds = elapsed.num_seconds().max(0);
    let (count, unit) = match seconds {
        s if s < 60 => return "just now".to_owned(),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s => (s / 86_400, "day"),
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural} ago")
}

/// Sends a notice from the bot to the owner's management room.
async fn notify(bridge: &Bridge, mxid: &str, state: LoginState, text: &str) -> Result<(), String> {
    let room = bridge
        .store
        .management_room(mxid)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the user has no management room".to_owned())?;
    let room_id = RoomId::parse(&room).map_err(|e| e.to_string())?;
    let reply = Reply::text(text);
    let content = AnyMessageLikeEventContent::RoomMessage(RoomMessageEventContent::notice_html(
        reply.plain,
        reply.html,
    ));
    let txn_id: OwnedTransactionId = format!(
        "mi-login-{}-{}",
        state.as_str(),
        Utc::now().timestamp_millis()
    )
    .into();
    bridge
        .client
        .send_message(
            &room_id,
            &txn_id,
            &content,
            None,
            Some(bridge.namespace.bot()),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const ALL: [LoginState; 6] = [
        LoginState::Connected,
        LoginState::SessionExpired,
        LoginState::ChallengeRequired,
        LoginState::CheckpointRequired,
        LoginState::RateLimited,
        LoginState::Unreachable,
    ];

    #[test]
    fn states_read_back_as_stored_and_old_values_keep_their_meaning() {
        for state in ALL {
            assert_eq!(LoginState::parse(state.as_str()), state);
        }
        assert_eq!(
            LoginState::parse("bad_credentials"),
            LoginState::SessionExpired
        );
        assert_eq!(
            LoginState::parse("disconnected"),
            LoginState::SessionExpired
        );
        assert_eq!(LoginState::parse("whatever"), LoginState::Connected);
    }

    #[test]
    fn only_an_ended_session_a_challenge_or_a_checkpoint_need_the_user() {
        let needing: Vec<LoginState> = ALL.into_iter().filter(|s| s.needs_user()).collect();
        assert_eq!(
            needing,
            [
                LoginState::SessionExpired,
                LoginState::ChallengeRequired,
                LoginState::CheckpointRequired
            ]
        );
    }

    #[test]
    fn failures_map_to_states() {
        let platform = || "Instagram".to_owned();
        let cases = [
            (
                ConnectorError::SessionExpired {
                    platform: platform(),
                    status: 403,
                    detail: None,
                },
                Some(LoginState::SessionExpired),
            ),
            (
                ConnectorError::IncompleteLogin {
                    message: "no sessionid".into(),
                },
                Some(LoginState::SessionExpired),
            ),
            (
                ConnectorError::ChallengeRequired {
                    platform: platform(),
                    status: 400,
                },
                Some(LoginState::ChallengeRequired),
            ),
            (
                ConnectorError::CheckpointRequired {
                    platform: platform(),
                    status: 400,
                },
                Some(LoginState::CheckpointRequired),
            ),
            (
                ConnectorError::RateLimited {
                    platform: platform(),
                    retry_after: None,
                },
                Some(LoginState::RateLimited),
            ),
            (
                ConnectorError::Transient {
                    platform: platform(),
                    message: "timeout".into(),
                },
                Some(LoginState::Unreachable),
            ),
            (
                ConnectorError::NotFound {
                    platform: platform(),
                    status: 404,
                    message: "gone".into(),
                },
                None,
            ),
        ];
        for (error, state) in cases {
            assert_eq!(LoginState::from_error(&error), state, "{error}");
        }
    }

    #[test]
    fn each_state_tells_the_user_what_to_do() {
        let expired = notice(LoginState::Connected, LoginState::SessionExpired, None).unwrap();
        assert!(
            expired.contains("Send `login` or `login-cookies`"),
            "{expired}"
        );
        let challenge = notice(LoginState::Connected, LoginState::ChallengeRequired, None).unwrap();
        assert!(challenge.contains("security check"), "{challenge}");
        let checkpoint =
            notice(LoginState::Connected, LoginState::CheckpointRequired, None).unwrap();
        assert!(checkpoint.contains("locked"), "{checkpoint}");
        let until = Utc.with_ymd_and_hms(2026, 12, 5, 14, 30, 0).unwrap();
        let limited = notice(LoginState::Connected, LoginState::RateLimited, Some(until)).unwrap();
        assert!(limited.contains("until 14:30 UTC"), "{limited}");
        assert!(limited.contains("Nothing is lost"), "{limited}");
        let unreachable = notice(LoginState::Connected, LoginState::Unreachable, None).unwrap();
        assert!(
            unreachable.contains("nothing you need to do"),
            "{unreachable}"
        );
    }

    #[test]
    fn reconnecting_is_announced_only_after_a_rate_limit_or_an_outage() {
        for from in [LoginState::RateLimited, LoginState::Unreachable] {
            let text = notice(from, LoginState::Connected, None).unwrap();
            assert!(text.starts_with("Reconnected"), "{text}");
        }
        for from in [
            LoginState::SessionExpired,
            LoginState::ChallengeRequired,
            LoginState::CheckpointRequired,
        ] {
            assert_eq!(notice(from, LoginState::Connected, None), None);
        }
    }

    #[test]
    fn a_description_shows_the_state_and_the_last_poll() {
        let login = LoginRecord {
            mxid: "@alice:x".into(),
            ig_user_id: Some("1".into()),
            username: Some("alice".into()),
            credentials: crate::secrets::Sealed::from_stored("x".into()),
            device_uuid: "d".into(),
            state: "bad_credentials".into(),
        };
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 10, 20, 0).unwrap();
        let polled = Utc.with_ymd_and_hms(2026, 12, 5, 10, 13, 30).unwrap();
        assert_eq!(
            describe(&login, Some(polled), now),
            "Logged in as @alice (session expired). Last successful poll 2026-12-05 10:13:30 \
             UTC (6 minutes ago)."
        );
        let fresh = LoginRecord {
            username: None,
            state: "connected".into(),
            ..login
        };
        assert_eq!(
            describe(&fresh, None, now),
            "Your Instagram login: connected. No successful poll yet."
        );
        assert_eq!(ago(chrono::TimeDelta::seconds(59)), "just now");
        assert_eq!(ago(chrono::TimeDelta::seconds(3600)), "1 hour ago");
        assert_eq!(ago(chrono::TimeDelta::days(3)), "3 days ago");
    }
}
