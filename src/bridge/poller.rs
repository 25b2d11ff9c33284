//! A login's poller: one inbox request per poll (and the message requests
//! and presence at a lower rate); thread pages only for threads whose newest
//! item or activity changed (or that `sync` named), followed back to the last
//! relayed item; the findings handed to the portals' workers. Errors back
//! off; a cool-down of the login's request budget is waited out (the login
//! moved to rate_limited meanwhile); a run of failures to reach Instagram
//! marks the login unreachable (until the next good poll); a login that needs
//! the user stops the poller (its state moved through [`login_state`], which
//! tells the user once). The spec's keep-alive check runs here too, every
//! `session.keep_alive.interval` with jitter.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::SeedableRng;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::backfill::{fetch_thread, Reach};
use super::login_session::LoginSession;
use super::login_state::{self, LoginState};
use super::portal_queue::ThreadUpdate;
use super::schedule::{jittered, Schedule};
use super::supervisor::PollerSignals;
use super::Bridge;
use crate::connector::auth::Credentials;
use crate::connector::http::Connector;
use crate::connector::session::{self, ConnectorError, KeepAliveOutcome};
use crate::connector::spec::CheckReaction;
use crate::model::{Conversation, ConversationKind, LastSeen};
use crate::store::{LoginRecord, PageItem, ThreadState};

/// Most inbox pages one catch-up reads.
const MAX_CATCH_UP_PAGES: usize = 10;

/// Where a database failure during a poll comes from (it says nothing
/// about Instagram).
const DATABASE: &str = "the bridge's database";

/// Runs the poller of the login `login_id` until it is stopped or the login
/// needs the user.
pub async fn run(
    bridge: Arc<Bridge>,
    login_id: String,
    signals: Arc<PollerSignals>,
    mut stopped: watch::Receiver<bool>,
) {
    let Some(mut poller) = Poller::load(bridge, &login_id).await else {
        return;
    };
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut keep_alive_at = poller.next_keep_alive(&mut rng);
    let mut poll_at = Instant::now();
    loop {
        // The keep-alive check has its own timer, so a login that polls
        // seldom is still checked on time.
        let keep_alive_due = keep_alive_at.unwrap_or(poll_at);
        tokio::select! {
            () = tokio::time::sleep_until(poll_at.into()) => {}
            () = signals.wake.notified() => {}
            () = tokio::time::sleep_until(keep_alive_due.into()), if keep_alive_at.is_some() => {
                let outcome = tokio::select! {
                    outcome = session::keep_alive(&poller.connector, &mut poller.session.creds) => outcome,
                    _ = stopped.changed() => return,
                };
                poller.session.save().await;
                if let Some(state) = keep_alive_state(&outcome) {
                    tracing::warn!(login = %login_id, "the keep-alive check found the session ended");
                    login_state::move_login(&poller.bridge, &login_id, state, None).await;
                    return;
                }
                if let KeepAliveOutcome::Failed(e) = &outcome {
                    tracing::warn!(login = %login_id, error = %e, "the keep-alive check failed");
                }
                keep_alive_at = poller.next_keep_alive(&mut rng);
                continue;
            }
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
        let forced = signals.take_forced();
        let outcome = tokio::select! {
            outcome = poller.poll(&forced) => outcome,
            _ = stopped.changed() => return,
        };
        poller.session.save().await;
        match outcome {
            Ok(since_activity) => {
                poller.schedule.succeeded(since_activity);
                poller.succeeded().await;
            }
            Err(e) if e.needs_login() => {
                poller.needs_login(&e).await;
                return;
            }
            // Instagram asked to slow down: no poll until the pause is over.
            Err(ConnectorError::CoolingDown { remaining, .. }) => {
                super::budget::tell_cool_down(&poller.bridge, &login_id).await;
                poller.schedule.paused(remaining);
            }
            Err(e) => {
                let retry_after = match &e {
                    ConnectorError::RateLimited { retry_after, .. } => *retry_after,
                    _ => None,
                };
                tracing::warn!(login = %login_id, error = %e, "poll failed; backing off");
                poller.schedule.failed(retry_after);
                poller.failed(&e).await;
            }
        }
        poll_at = Instant::now() + poller.schedule.next_delay(&mut rng);
    }
}

struct Poller {
    bridge: Arc<Bridge>,
    /// The bridge's connector with the polling request timeout.
    connector: Connector,
    /// The login and its credentials (saved when responses rotate them).
    session: LoginSession,
    schedule: Schedule,
    requests_polled: Option<Instant>,
    /// The message request count the inbox showed when they were last polled.
    requests_seen: Option<i64>,
    presence_polled: Option<Instant>,
    /// The watermark this run saved last.
    watermark_saved: Option<i64>,
    /// Polls in a row that could not reach Instagram.
    unreachable_polls: u64,
    /// Whether the login is marked unreachable (until a poll succeeds).
    unreachable: bool,
    /// Whether the login was left rate-limited by an earlier run (whose
    /// cool-downs this run does not know): connected after a good poll.
    rate_limited_before: bool,
}

/// The threads one poll looks at.
struct Inbox {
    /// Each with whether it is a message request, newest activity first.
    list: Vec<(Conversation, bool)>,
    /// The count of message requests the inbox reported.
    pending_requests: Option<i64>,
}

/// What to do with one thread of the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// Nothing changed.
    Skip,
    /// Known from a first sync, bridged at its next activity.
    Remember,
    /// Fetch pages back to `Reach` and relay.
    Fetch(Reach),
    /// Only read receipts changed.
    ReadOnly,
}

impl Poller {
    async fn load(bridge: Arc<Bridge>, login_id: &str) -> Option<Poller> {
        // Errors are logged where they happen; a login that is gone or waits for
        // the user is not polled.
        let session = LoginSession::open(&bridge, login_id).await.ok()?;
        let unreachable = LoginState::of(&session.login) == LoginState::Unreachable;
        let rate_limited_before = LoginState::of(&session.login) == LoginState::RateLimited;
        let timeout = Duration::from_millis(bridge.config.polling.request_timeout_ms);
        Some(Poller {
            connector: session.connector.clone().with_timeout(timeout),
            schedule: Schedule::new(&bridge.config.polling),
            bridge,
            session,
            requests_polled: None,
            requests_seen: None,
            presence_polled: None,
            watermark_saved: None,
            unreachable_polls: 0,
            unreachable,
            rate_limited_before,
        })
    }

    /// When the spec's keep-alive check runs next: its interval lengthened
    /// by up to the polling jitter; `None` when the spec has none.
    fn next_keep_alive(&self, rng: &mut impl rand::Rng) -> Option<Instant> {
        let interval = self.connector.spec().keep_alive.as_ref()?.interval?;
        let jitter = self.bridge.config.polling.jitter_percent as f64 / 100.0;
        Some(Instant::now() + jittered(interval, jitter, rng))
    }

    /// A poll succeeded: records when, and ends an unreachable state, and a
    /// rate-limited one once its series of cool-downs is over.
    async fn succeeded(&mut self) {
        self.unreachable_polls = 0;
        let login_id = &self.session.login.id;
        if let Err(e) = self
            .bridge
            .store
            .record_poll_success(login_id, Utc::now().timestamp_millis())
            .await
        {
            tracing::warn!(login = %login_id, error = %e, "cannot record a successful poll");
        }
        if std::mem::take(&mut self.rate_limited_before) {
            login_state::move_login(&self.bridge, login_id, LoginState::Connected, None).await;
        }
        super::budget::tell_recovered(&self.bridge, login_id).await;
        if self.unreachable {
            self.unreachable = false;
            login_state::move_login(&self.bridge, login_id, LoginState::Connected, None).await;
        }
    }

    /// A poll failed without needing the user: after
    /// `polling.unreachable_after_failures` in a row that could not reach
    /// Instagram, the login is marked unreachable (its owner told once).
    async fn failed(&mut self, error: &ConnectorError) {
        let reaching =
            matches!(error, ConnectorError::Transient { platform, .. } if platform != DATABASE);
        if !reaching {
            return;
        }
        self.unreachable_polls += 1;
        if self.unreachable
            || self.unreachable_polls < self.bridge.config.polling.unreachable_after_failures
        {
            return;
        }
        self.unreachable = true;
        login_state::move_login(
            &self.bridge,
            &self.session.login.id,
            LoginState::Unreachable,
            None,
        )
        .await;
    }

    fn due(last: Option<Instant>, every_ms: u64) -> bool {
        last.is_none_or(|at| at.elapsed() >= Duration::from_millis(every_ms))
    }

    /// One poll; returns how long ago the newest activity was.
    async fn poll(&mut self, forced: &HashSet<String>) -> Result<Option<Duration>, ConnectorError> {
        let bridge = self.bridge.clone();
        let config = &bridge.config;
        let login_id = self.session.login.id.clone();
        // The login's first sync chooses its portals; every later poll reads
        // the inbox back to the newest activity the last poll saw (usually
        // one page), so chats that became active beyond the first page (a
        // busy moment, or downtime) are seen too.
        let sync = bridge
            .store
            .login_sync(&login_id)
            .await
            .map_err(store_trouble)?;
        let synced = sync.is_some();
        let watermark = sync.and_then(|sync| sync.watermark);

        let mut threads = self.read_inbox(synced, watermark).await?;
        if self.requests_due(threads.pending_requests) {
            let requests = self.connector.list_pending(&mut self.session.creds).await?;
            self.requests_polled = Some(Instant::now());
            self.requests_seen = threads.pending_requests;
            let known: HashSet<String> = threads.list.iter().map(|(c, _)| c.id.clone()).collect();
            threads.list.extend(
                requests
                    .into_iter()
                    .filter(|c| !known.contains(&c.id))
                    .map(|c| (c, true)),
            );
        }

        let states: HashMap<String, ThreadState> = bridge
            .store
            .thread_states(&login_id)
            .await
            .map_err(store_trouble)?
            .into_iter()
            .map(|state| (state.thread_id.clone(), state))
            .collect();
        let mut newest_activity = None;
        let mut partners = Vec::new();
        let mut jobs = Vec::new();
        for (rank, (conversation, request)) in threads.list.into_iter().enumerate() {
            newest_activity = newest_activity.max(conversation.updated_at);
            let state = states.get(&conversation.id);
            let request = request || conversation.pending == Some(true);
            let plan = plan(
                state,
                &conversation,
                request,
                !synced && rank >= config.backfill.initial_threads && !request,
                forced.contains(&conversation.id),
                config.backfill.initial_messages,
                self.session.login.ig_user_id.as_deref(),
            );
            if state.is_some_and(|s| s.bridged) && conversation.kind == ConversationKind::Direct {
                partners.extend(conversation.participants.iter().map(|p| p.id.clone()));
            }
            match plan {
                Plan::Skip => {}
                Plan::Remember => self.remember(&conversation).await?,
                Plan::ReadOnly | Plan::Fetch(_)
                    if !bridge.queues.is_idle(&login_id, &conversation.id) => {}
                Plan::ReadOnly => {
                    let update = self.update(conversation, request, state, None);
                    bridge.queues.offer(&bridge, update);
                }
                Plan::Fetch(reach) => jobs.push(FetchJob {
                    conversation,
                    request,
                    state: state.cloned(),
                    reach,
                }),
            }
        }
        let (relayed_something, failure) = self.fetch_all(jobs).await?;
        // A failed thread keeps the old watermark, so a restart reads back to it.
        let mark = newest_activity
            .map(|at| at.timestamp_micros())
            .filter(|_| failure.is_none());
        if !synced || (mark.is_some() && mark != self.watermark_saved) {
            bridge
                .store
                .save_login_sync(&login_id, mark)
                .await
                .map_err(store_trouble)?;
            self.watermark_saved = mark;
        }
        // Presence is worth asking for often only while someone is chatting.
        let active = relayed_something
            || newest_activity.is_some_and(|at| {
                (Utc::now() - at).num_milliseconds()
                    <= i64::try_from(config.polling.active_window_ms).unwrap_or(i64::MAX)
            });
        let presence_every = if active {
            config.polling.presence_interval_ms
        } else {
            config.polling.presence_idle_interval_ms
        };
        if Self::due(self.presence_polled, presence_every) && !partners.is_empty() {
            self.presence_polled = Some(Instant::now());
            self.relay_presence(&partners).await?;
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if relayed_something {
            return Ok(Some(Duration::ZERO));
        }
        Ok(newest_activity.map(|at| (Utc::now() - at).to_std().unwrap_or_default()))
    }

    /// The inbox's first page; on a first sync as many pages as its portal
    /// count needs, and while a page's oldest thread is newer than
    /// `watermark`, the next page too.
    async fn read_inbox(
        &mut self,
        synced: bool,
        watermark: Option<i64>,
    ) -> Result<Inbox, ConnectorError> {
        let bridge = self.bridge.clone();
        let mut inbox = Inbox {
            list: Vec::new(),
            pending_requests: None,
        };
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = self
                .connector
                .list_conversations_page(&mut self.session.creds, cursor.as_deref())
                .await?;
            pages += 1;
            if pages == 1 {
                inbox.pending_requests = page.pending_requests;
            }
            let oldest = page
                .conversations
                .last()
                .and_then(|c| c.updated_at)
                .map(|at| at.timestamp_micros());
            inbox
                .list
                .extend(page.conversations.into_iter().map(|c| (c, false)));
            let first_sync = !synced && inbox.list.len() < bridge.config.backfill.initial_threads;
            let behind = matches!((oldest, watermark), (Some(oldest), Some(mark)) if oldest > mark)
                && pages < MAX_CATCH_UP_PAGES;
            match page
                .cursor
                .filter(|_| page.has_older && (first_sync || behind))
            {
                Some(next) => cursor = Some(next),
                None => return Ok(inbox),
            }
        }
    }

    /// Whether to poll the message requests: when the inbox's request count
    /// changed, else at their interval while there are any (or when the
    /// platform gives no count).
    fn requests_due(&self, pending_requests: Option<i64>) -> bool {
        let interval = self.bridge.config.polling.requests_interval_ms;
        match pending_requests {
            Some(count) if self.requests_polled.is_some() && Some(count) != self.requests_seen => {
                true
            }
            Some(0) => self.requests_polled.is_none(),
            _ => Self::due(self.requests_polled, interval),
        }
    }

    /// Records a thread seen on the first sync as it is now, without a portal.
    async fn remember(&self, conversation: &Conversation) -> Result<(), ConnectorError> {
        let state = ThreadState {
            login_id: self.session.login.id.clone(),
            thread_id: conversation.id.clone(),
            last_item_id: conversation.newest_item_id.clone(),
            activity_at: conversation.updated_at.map(|at| at.timestamp_micros()),
            ..ThreadState::default()
        };
        self.bridge
            .store
            .save_thread_state(&state)
            .await
            .map_err(store_trouble)
    }

    /// Fetches the threads' pages, `polling.parallel_fetches` threads at a
    /// time, and hands each update to its portal's worker as soon as it is
    /// fetched. Returns whether anything new was found, and the first
    /// failure that did not stop the poll (a login that needs the user does).
    async fn fetch_all(
        &mut self,
        jobs: Vec<FetchJob>,
    ) -> Result<(bool, Option<ConnectorError>), ConnectorError> {
        let parallel = usize::try_from(self.bridge.config.polling.parallel_fetches)
            .unwrap_or(1)
            .max(1);
        let mut jobs = jobs.into_iter();
        let mut running = JoinSet::new();
        let mut relayed_something = false;
        let mut failure = None;
        loop {
            while running.len() < parallel {
                let Some(job) = jobs.next() else { break };
                running.spawn(fetch(
                    self.connector.clone(),
                    self.session.creds.clone(),
                    self.session.login.clone(),
                    self.bridge.config.backfill.max_catchup_messages,
                    job,
                ));
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let (result, creds) = match joined {
                Ok(done) => done,
                Err(e) => {
                    tracing::error!(login = %self.session.login.id, error = %e, "a thread fetch panicked");
                    continue;
                }
            };
            // Cookies and claims a response rotated; the newest answer wins.
            if let Some(creds) = creds {
                self.session.creds = creds;
            }
            match result {
                Ok(update) => {
                    relayed_something |= !update.messages.is_empty();
                    self.bridge.queues.offer(&self.bridge, update);
                }
                Err(e) if e.needs_login() => return Err(e),
                Err(ConnectorError::NotFound { .. }) => {}
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        Ok((relayed_something, failure))
    }

    fn update(
        &self,
        conversation: Conversation,
        request: bool,
        state: Option<&ThreadState>,
        newest_page: Option<Vec<PageItem>>,
    ) -> ThreadUpdate {
        thread_update(
            &self.session.login,
            conversation,
            request,
            state,
            newest_page,
        )
    }

    async fn relay_presence(&mut self, partners: &[String]) -> Result<(), ConnectorError> {
        let presences = match self
            .connector
            .presence(&mut self.session.creds, partners)
            .await
        {
            Ok(presences) => presences,
            Err(e) if e.needs_login() => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read presence");
                return Ok(());
            }
        };
        for presence in presences {
            if let Err(e) = super::relay_in::relay_presence(&self.bridge, &presence).await {
                tracing::debug!(error = %e, "cannot relay presence");
            }
        }
        Ok(())
    }

    /// The login needs the user: marks it and tells them once.
    async fn needs_login(&self, error: &ConnectorError) {
        login_state::login_needs_user(&self.bridge, &self.session.login.id, error).await;
    }
}

/// A thread whose pages a poll fetches.
struct FetchJob {
    conversation: Conversation,
    request: bool,
    state: Option<ThreadState>,
    reach: Reach,
}

/// Fetches a thread's pages back to the job's reach and builds its update;
/// returns the credentials too when the responses changed them.
async fn fetch(
    connector: Connector,
    creds: Credentials,
    login: LoginRecord,
    cap: usize,
    job: FetchJob,
) -> (Result<ThreadUpdate, ConnectorError>, Option<Credentials>) {
    let mut rotated = creds.clone();
    let result = fetch_update(&connector, &mut rotated, &login, cap, job).await;
    (result, (rotated != creds).then_some(rotated))
}

async fn fetch_update(
    connector: &Connector,
    creds: &mut Credentials,
    login: &LoginRecord,
    cap: usize,
    job: FetchJob,
) -> Result<ThreadUpdate, ConnectorError> {
    let FetchJob {
        conversation,
        request,
        state,
        reach,
    } = job;
    let requested = Instant::now();
    let fetched = fetch_thread(connector, creds, &conversation.id, &reach, cap).await?;
    if !fetched.complete {
        tracing::warn!(
            login = %login.id,
            thread = %conversation.id,
            cap,
            "catch-up capped: older messages of the gap are not bridged"
        );
    }
    let unsent = state
        .as_ref()
        .map(|s| unsent(&s.newest_page, &fetched.newest_page))
        .unwrap_or_default();
    let mut update = thread_update(
        login,
        conversation,
        request,
        state.as_ref(),
        Some(fetched.newest_page),
    );
    update.messages = fetched.messages;
    update.history_cut = !fetched.complete;
    update.unsent = unsent;
    update.requested = requested;
    Ok(update)
}

fn thread_update(
    login: &LoginRecord,
    conversation: Conversation,
    request: bool,
    state: Option<&ThreadState>,
    newest_page: Option<Vec<PageItem>>,
) -> ThreadUpdate {
    let mut update = ThreadUpdate::new(login.id.clone(), conversation, request);
    update.seen = changed_seen(&update.conversation, state, login.ig_user_id.as_deref());
    update.newest_page = newest_page;
    update
}

/// A database failure during a poll: retried like a transient platform one.
fn store_trouble(e: crate::store::StoreError) -> ConnectorError {
    ConnectorError::Transient {
        platform: DATABASE.to_owned(),
        message: e.to_string(),
    }
}

/// The state a keep-alive outcome moves the login to, when its session
/// ended (`mark_disconnected` and `reconnect_required` alike end it; a
/// challenge or checkpoint keeps its own state).
fn keep_alive_state(outcome: &KeepAliveOutcome) -> Option<LoginState> {
    let KeepAliveOutcome::LoggedOut { reaction, error } = outcome else {
        return None;
    };
    let state = match reaction {
        CheckReaction::MarkDisconnected => LoginState::SessionExpired,
        CheckReaction::ReconnectRequired => LoginState::from_error(error)
            .filter(|state| state.needs_user())
            .unwrap_or(LoginState::SessionExpired),
    };
    Some(state)
}

/// Decides what a poll does with one inbox thread.
fn plan(
    state: Option<&ThreadState>,
    conversation: &Conversation,
    request: bool,
    beyond_first_sync: bool,
    forced: bool,
    initial_messages: usize,
    viewer: Option<&str>,
) -> Plan {
    let history = Plan::Fetch(Reach::Newest {
        count: initial_messages,
    });
    let Some(state) = state else {
        return if beyond_first_sync {
            Plan::Remember
        } else {
            history
        };
    };
    if !state.bridged {
        let active = conversation.newest_item_id.is_some()
            && conversation.newest_item_id != state.last_item_id;
        return if active || forced {
            history
        } else {
            Plan::Skip
        };
    }
    let activity = conversation.updated_at.map(|at| at.timestamp_micros());
    let changed = forced
        || conversation.newest_item_id != state.last_item_id
        || activity != state.activity_at
        || request != state.request;
    if changed {
        return match &state.last_item_id {
            Some(item_id) => Plan::Fetch(Reach::Since {
                item_id: item_id.clone(),
                at: state.last_item_at,
            }),
            None => history,
        };
    }
    if changed_seen(conversation, Some(state), viewer).is_empty() {
        Plan::Skip
    } else {
        Plan::ReadOnly
    }
}

/// Other participants' read states that differ from the relayed ones.
fn changed_seen(
    conversation: &Conversation,
    state: Option<&ThreadState>,
    viewer: Option<&str>,
) -> Vec<LastSeen> {
    conversation
        .last_seen
        .iter()
        .filter(|seen| Some(seen.user_id.as_str()) != viewer)
        .filter(|seen| seen.item_id.is_some())
        .filter(|seen| state.and_then(|s| s.seen.get(&seen.user_id)) != seen.item_id.as_ref())
        .cloned()
        .collect()
}

/// Items of the previous newest page that should still be on the new one
/// (no older than its oldest item) but are not: they were unsent.
fn unsent(previous: &[PageItem], current: &[PageItem]) -> Vec<String> {
    let Some(oldest) = current.iter().map(|(_, at)| *at).min() else {
        return Vec::new();
    };
    let present: HashSet<&str> = current.iter().map(|(id, _)| id.as_str()).collect();
    previous
        .iter()
        .filter(|(id, at)| *at >= oldest && !present.contains(id.as_str()))
        .map(|(id, _)| id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn conversation(newest: Option<&str>, activity_us: i64) -> Conversation {
        serde_json::from_value(serde_json::json!({
            "id": "t1",
            "type": "direct",
            "newest_item_id": newest,
            "updated_at": Utc.timestamp_micros(activity_us).unwrap(),
            "last_seen": [
                {"user_id": "me", "item_id": "i2"},
                {"user_id": "friend", "item_id": "i1"},
            ],
        }))
        .unwrap()
    }

    fn bridged(last: &str, activity_us: i64) -> ThreadState {
        ThreadState {
            bridged: true,
            last_item_id: Some(last.to_owned()),
            last_item_at: Some(5),
            activity_at: Some(activity_us),
            seen: [("friend".to_owned(), "i1".to_owned())].into(),
            ..ThreadState::default()
        }
    }

    fn plan_for(state: Option<&ThreadState>, conversation: &Conversation) -> Plan {
        plan(state, conversation, false, false, false, 50, Some("me"))
    }

    #[test]
    fn a_keep_alive_that_finds_the_session_gone_needs_the_user() {
        let expired = ConnectorError::SessionExpired {
            platform: "Instagram".into(),
            status: 403,
            detail: None,
        };
        let challenged = ConnectorError::ChallengeRequired {
            platform: "Instagram".into(),
            status: 400,
        };
        let logged_out = |reaction, error: &ConnectorError| KeepAliveOutcome::LoggedOut {
            reaction,
            error: error.clone(),
        };
        assert_eq!(
            keep_alive_state(&logged_out(CheckReaction::MarkDisconnected, &expired)),
            Some(LoginState::SessionExpired)
        );
        assert_eq!(
            keep_alive_state(&logged_out(CheckReaction::ReconnectRequired, &challenged)),
            Some(LoginState::ChallengeRequired)
        );
        assert_eq!(keep_alive_state(&KeepAliveOutcome::Alive), None);
        assert_eq!(
            keep_alive_state(&KeepAliveOutcome::Failed(ConnectorError::Transient {
                platform: "Instagram".into(),
                message: "timeout".into(),
            })),
            None,
            "an unreachable Instagram says nothing about the session"
        );
    }

    #[test]
    fn unchanged_threads_cost_no_request() {
        let state = bridged("i2", 100);
        assert_eq!(
            plan_for(Some(&state), &conversation(Some("i2"), 100)),
            Plan::Skip
        );
    }

    #[test]
    fn a_new_item_or_activity_fetches_back_to_the_last_item() {
        let state = bridged("i2", 100);
        let since = Plan::Fetch(Reach::Since {
            item_id: "i2".to_owned(),
            at: Some(5),
        });
        assert_eq!(
            plan_for(Some(&state), &conversation(Some("i3"), 200)),
            since
        );
        assert_eq!(
            plan_for(Some(&state), &conversation(Some("i2"), 200)),
            since
        );
        assert_eq!(
            plan(
                Some(&state),
                &conversation(Some("i2"), 100),
                false,
                false,
                true,
                50,
                None
            ),
            since,
            "sync forces a fetch"
        );
    }

    #[test]
    fn new_threads_get_history_unless_beyond_the_first_sync() {
        let fresh = conversation(Some("i1"), 100);
        assert_eq!(
            plan_for(None, &fresh),
            Plan::Fetch(Reach::Newest { count: 50 })
        );
        assert_eq!(
            plan(None, &fresh, false, true, false, 50, None),
            Plan::Remember
        );
        let remembered = ThreadState {
            last_item_id: Some("i1".to_owned()),
            ..ThreadState::default()
        };
        assert_eq!(plan_for(Some(&remembered), &fresh), Plan::Skip);
        assert_eq!(
            plan_for(Some(&remembered), &conversation(Some("i2"), 200)),
            Plan::Fetch(Reach::Newest { count: 50 }),
            "a remembered thread is bridged at its next activity"
        );
    }

    #[test]
    fn read_receipts_of_others_alone_need_no_pages() {
        let mut state = bridged("i2", 100);
        state.seen.clear();
        assert_eq!(
            plan_for(Some(&state), &conversation(Some("i2"), 100)),
            Plan::ReadOnly
        );
        let seen = changed_seen(&conversation(Some("i2"), 100), Some(&state), Some("me"));
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].user_id, "friend");
    }

    #[test]
    fn items_missing_from_the_newest_page_were_unsent() {
        let previous = vec![
            ("c".to_owned(), 30),
            ("b".to_owned(), 20),
            ("a".to_owned(), 10),
        ];
        let current = vec![
            ("d".to_owned(), 40),
            ("c".to_owned(), 30),
            ("a".to_owned(), 10),
        ];
        assert_eq!(unsent(&previous, &current), ["b"]);
        let shifted = vec![
            ("e".to_owned(), 50),
            ("d".to_owned(), 40),
            ("c".to_owned(), 30),
        ];
        assert!(
            unsent(&previous, &shifted).is_empty(),
            "older items scrolled off"
        );
        assert!(unsent(&previous, &[]).is_empty());
    }
}
