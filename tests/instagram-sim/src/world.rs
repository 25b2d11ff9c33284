//! The simulated world: accounts, sessions, threads and their items, uploads, presence,
//! faults, the rate limit and the request log. Every API handler and control call reads and
//! changes this state under one lock; nothing here awaits.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::cursor::CursorStore;
use crate::error::SimError;
use crate::media::{self, Blob};
use crate::render;
use crate::session::{Offence, SessionEnd, SessionRecord};
use crate::settings::Settings;
use crate::upload::UploadRecord;

/// The viewer-independent part of an Instagram account, plus the secrets a test needs to act
/// as it (API cookies and the web-login password).
#[derive(Clone, Serialize, Deserialize)]
pub struct Account {
    pub pk: u64,
    pub username: String,
    pub full_name: String,
    /// Cookies of a fresh API session: sessionid, csrftoken, ds_user_id, mid, ig_did.
    pub cookies: BTreeMap<String, String>,
    pub password: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("pk", &self.pk)
            .field("username", &self.username)
            .field("full_name", &self.full_name)
            .field("cookies", &self.cookies.keys().collect::<Vec<_>>())
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What `fetch_and_subscribe_presence/` and `get_presence/` report for a user.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Presence {
    pub is_active: bool,
    pub last_activity_at_ms: u64,
}

/// A scripted failure: the next `times` requests whose path starts with `path_prefix`
/// (and whose method matches, when given) are answered by it. By default the fault strikes
/// before the request is carried out; with `after_write` the request is carried out first
/// (a send appends its item) and only the answer is lost: replaced by `status`/`body`, or
/// by a dropped connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Fault {
    /// Full path (`/api/v1/direct_v2/inbox/`) or one relative to `/api/v1/` (`direct_v2/inbox/`).
    pub path_prefix: String,
    pub method: Option<String>,
    /// `None`: the request is served normally (after `delay`, with `headers` and
    /// `malformed_body` applied to the real answer).
    pub status: Option<u16>,
    /// The body to answer with; defaults to Instagram's 500 body.
    pub body: Option<String>,
    pub headers: Vec<(String, String)>,
    #[serde(with = "duration_ms", rename = "delay_ms")]
    pub delay: Duration,
    /// Cut the JSON body in half so it no longer parses.
    pub malformed_body: bool,
    /// Carry the request out first, then wait `delay` and answer with the fault (the
    /// "write, then 500" and "write, then drop the connection" failures).
    pub after_write: bool,
    /// Close the connection without an answer (the client sees a broken connection, not a
    /// response); before the request is carried out unless `after_write`.
    pub drop_connection: bool,
    pub times: usize,
}

impl Default for Fault {
    fn default() -> Self {
        Fault {
            path_prefix: "/".into(),
            method: None,
            status: None,
            body: None,
            headers: Vec::new(),
            delay: Duration::ZERO,
            malformed_body: false,
            after_write: false,
            drop_connection: false,
            times: 1,
        }
    }
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}

/// How a request's `X-IG-WWW-Claim` header related to the claim the session was given.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClaimEcho {
    Absent,
    /// The header was sent but did not equal the claim (e.g. `0` before one was received).
    Differs,
    Matches,
}

/// The device a request said it came from: its device headers' values (identifiers
/// of a phone, not secrets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHeaders {
    /// `X-IG-Device-ID`.
    pub device_id: Option<String>,
    /// `X-IG-Family-Device-ID`.
    pub family_device_id: Option<String>,
    /// `X-IG-Android-ID`.
    pub android_id: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
}

/// One request as the simulator saw it. Never holds secret values: only which headers,
/// cookies and form fields were present, and the device headers' values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestLogEntry {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Lower-case header names.
    pub headers: Vec<String>,
    pub cookies: Vec<String>,
    pub form_fields: Vec<String>,
    /// Whether `X-CSRFTOKEN` equalled the csrftoken cookie (POSTs only).
    pub csrf_ok: Option<bool>,
    pub www_claim: ClaimEcho,
    /// Whether `ig-u-rur` echoed the session's routing hint (`ig-set-ig-u-rur`).
    pub ig_u_rur: ClaimEcho,
    /// The account the request was authenticated as, when it was.
    pub pk: Option<u64>,
    pub status: u16,
    #[serde(default)]
    pub device: DeviceHeaders,
}

pub(crate) struct AccountRecord {
    pub pk: u64,
    pub username: String,
    pub full_name: String,
    pub password: String,
    pub two_factor_code: Option<String>,
    pub challenge: bool,
    /// API calls answer `checkpoint_required` until cleared.
    pub checkpoint: bool,
    pub presence: Presence,
}

/// Per-member state of a thread: what each member's own actions changed.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemberState {
    pub muted: bool,
    pub hidden: bool,
    pub marked_as_unread: bool,
    pub pending: bool,
    pub last_seen: Option<(u128, u64)>,
    pub typing: Option<Typing>,
}

/// The last typing indicator a member sent (`activity_status` 1 typing, 0 stopped).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Typing {
    pub activity_status: u8,
    pub at_ms: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Reaction {
    pub sender_id: u64,
    /// `None` is a legacy heart, listed under `reactions.likes`.
    pub emoji: Option<String>,
    pub timestamp_us: u64,
    pub client_context: String,
}

#[derive(Debug, Clone)]
pub(crate) struct ItemRecord {
    pub item_id: u128,
    pub timestamp_us: u64,
    pub user_id: u64,
    pub item_type: String,
    /// The fixture under items/ whose key set and order this item is rendered with.
    pub template: &'static str,
    pub payload: Value,
    pub client_context: String,
    pub message_id: String,
    pub uq_seq_id: u64,
    pub reactions: Vec<Reaction>,
    pub replied_to: Option<Box<ItemRecord>>,
    pub edited: Option<Edited>,
}

/// How often and when a text item was last edited.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Edited {
    pub count: u32,
    pub at_us: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct ThreadRecord {
    pub thread_id: String,
    pub thread_v2_id: u64,
    pub messaging_thread_key: u64,
    pub is_group: bool,
    pub title: Option<String>,
    pub creator: u64,
    /// Current members, the viewer included, in join order.
    pub members: Vec<u64>,
    pub left: Vec<u64>,
    pub admins: Vec<u64>,
    /// Oldest first; item ids are unique and increasing.
    pub items: Vec<ItemRecord>,
    pub member_state: BTreeMap<u64, MemberState>,
    pub created_at_us: u64,
    pub next_uq_seq_id: u64,
    /// The last change that is not a new item (reaction, unsend, edit), µs; 0 if none.
    pub activity_us: u64,
    /// The group picture's blob name, once set.
    pub image: Option<String>,
}

impl ThreadRecord {
    /// The newest item's time, or a later change to the thread (reaction, unsend, edit).
    pub fn last_activity_us(&self) -> u64 {
        let newest = self
            .items
            .last()
            .map_or(self.created_at_us, |item| item.timestamp_us);
        newest.max(self.activity_us)
    }

    /// Where the item is in `items`, or `ItemNotFound`.
    fn item_position(&self, item_id: u128) -> Result<usize, SimError> {
        self.items
            .iter()
            .position(|item| item.item_id == item_id)
            .ok_or_else(|| SimError::ItemNotFound {
                thread_id: self.thread_id.clone(),
                item_id: item_id.to_string(),
            })
    }

    pub fn item(&self, item_id: u128) -> Result<&ItemRecord, SimError> {
        self.item_position(item_id).map(|index| &self.items[index])
    }

    pub(crate) fn item_mut(&mut self, item_id: u128) -> Result<&mut ItemRecord, SimError> {
        let index = self.item_position(item_id)?;
        Ok(&mut self.items[index])
    }

    /// Unread for `viewer`: someone else's item is newer than what the viewer has seen.
    pub fn is_unread_for(&self, viewer: u64) -> bool {
        let seen = self
            .member_state
            .get(&viewer)
            .and_then(|state| state.last_seen)
            .map_or(0, |(item_id, _)| item_id);
        self.items
            .iter()
            .any(|item| item.user_id != viewer && item.item_id > seen)
    }

    pub fn state(&self, pk: u64) -> MemberState {
        self.member_state.get(&pk).cloned().unwrap_or_default()
    }
}

/// A login that passed the password step and waits for a 2FA code or a challenge click.
pub(crate) struct PendingLogin {
    pub pk: u64,
    pub csrftoken: String,
    pub needs_two_factor: bool,
}

struct RateLimiter {
    max_requests: usize,
    per: Duration,
    recent: VecDeque<Instant>,
}

/// A kind of item to post, as JSON: `{"item_type": T, ...}`. When the object has a key named
/// T, that value is the payload, verbatim; otherwise the payload is built from the fixture
/// of that kind plus the convenience fields documented in README.md.
pub type ItemKind = Value;

/// Width and height of every account's profile picture.
pub(crate) const PROFILE_PIC_SIZE: u32 = 150;

/// How many log entries are kept, so long benchmark runs do not grow memory without bound.
pub const REQUEST_LOG_CAPACITY: usize = 50_000;

pub(crate) struct World {
    pub base_url: String,
    pub accounts: BTreeMap<u64, AccountRecord>,
    pub sessions: HashMap<String, SessionRecord>,
    pub threads: BTreeMap<String, ThreadRecord>,
    pub blobs: HashMap<String, Blob>,
    /// Uploads to the upload host, by `media_id`.
    pub uploads: HashMap<String, UploadRecord>,
    /// Per session: when its recent sends were made (the spam limit's sliding window).
    send_windows: HashMap<String, VecDeque<Instant>>,
    pub faults: Vec<Fault>,
    rate_limit: Option<RateLimiter>,
    /// The newest [`REQUEST_LOG_CAPACITY`] requests; `request_counts` counts them all.
    request_log: VecDeque<RequestLogEntry>,
    request_counts: HashMap<(String, String), usize>,
    pub pending_logins: HashMap<String, PendingLogin>,
    /// Per viewer: grows with every change that viewer can see.
    seq_ids: HashMap<u64, u64>,
    pub settings: Settings,
    pub cursors: CursorStore,
    /// Key of the media URL signatures.
    pub media_secret: u64,
    last_timestamp_us: u64,
    next_pk: u64,
    next_id: u64,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

pub(crate) fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A client_context in the real format: `(ms << 22) + random`.
pub(crate) fn new_client_context() -> String {
    ((now_ms() << 22) + rand::thread_rng().gen_range(0..(1u64 << 22))).to_string()
}

/// Parses an item id (a decimal string of `timestamp_us << 64`).
pub(crate) fn parse_item_id(item_id: &str) -> Option<u128> {
    item_id.trim().trim_matches('"').parse().ok()
}

impl World {
    pub fn new(base_url: String) -> Self {
        World {
            base_url,
            accounts: BTreeMap::new(),
            sessions: HashMap::new(),
            threads: BTreeMap::new(),
            blobs: HashMap::new(),
            uploads: HashMap::new(),
            send_windows: HashMap::new(),
            faults: Vec::new(),
            rate_limit: None,
            request_log: VecDeque::new(),
            request_counts: HashMap::new(),
            pending_logins: HashMap::new(),
            seq_ids: HashMap::new(),
            settings: Settings::default(),
            cursors: CursorStore::default(),
            media_secret: rand::thread_rng().gen(),
            last_timestamp_us: 0,
            next_pk: 17_841_400_000_000_001,
            next_id: 1,
        }
    }

    /// A strictly increasing µs timestamp, so item ids never collide.
    pub(crate) fn next_timestamp_us(&mut self) -> u64 {
        let now = now_us().max(self.last_timestamp_us + 1);
        self.last_timestamp_us = now;
        now
    }

    pub(crate) fn next_serial(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The inbox `seq_id` of `viewer`.
    pub fn seq_id(&self, viewer: u64) -> u64 {
        1000 + self.seq_ids.get(&viewer).copied().unwrap_or(0)
    }

    /// Counts a change every member (and former member) of the thread can see.
    pub(crate) fn bump_seq(&mut self, thread_id: &str) {
        let Ok(thread) = self.thread(thread_id) else {
            return;
        };
        let viewers: Vec<u64> = thread.members.iter().chain(&thread.left).copied().collect();
        for viewer in viewers {
            *self.seq_ids.entry(viewer).or_default() += 1;
        }
    }

    /// A change to the thread that is not a new item (reaction, unsend, edit): its activity
    /// moves, so a poller that compares `last_activity_at` notices it.
    pub(crate) fn touch(&mut self, thread_id: &str) -> Result<(), SimError> {
        let now = self.next_timestamp_us();
        let thread = self.thread_mut(thread_id)?;
        thread.activity_us = thread.activity_us.max(now);
        self.bump_seq(thread_id);
        Ok(())
    }

    pub fn media_url(&self, blob_name: &str) -> String {
        format!("{}/media/{blob_name}", self.base_url)
    }

    // ---- accounts and sessions ----

    pub fn create_account(
        &mut self,
        username: &str,
        full_name: &str,
        password: Option<&str>,
    ) -> Result<Account, SimError> {
        if self.account_by_username(username).is_some() {
            return Err(SimError::UsernameTaken {
                username: username.into(),
            });
        }
        let pk = self.next_pk;
        self.next_pk += 1;
        let password = password.map_or_else(|| random_token(16), str::to_owned);
        self.accounts.insert(
            pk,
            AccountRecord {
                pk,
                username: username.into(),
                full_name: full_name.into(),
                password: password.clone(),
                two_factor_code: None,
                challenge: false,
                checkpoint: false,
                presence: Presence {
                    is_active: false,
                    last_activity_at_ms: now_ms(),
                },
            },
        );
        self.blobs.insert(
            format!("profile_{pk}.png"),
            media::png(PROFILE_PIC_SIZE, PROFILE_PIC_SIZE, pk % 1000),
        );
        let cookies = self.new_session(pk, &random_token(32));
        Ok(Account {
            pk,
            username: username.into(),
            full_name: full_name.into(),
            cookies,
            password,
        })
    }

    /// Opens a session for `pk` and returns its cookies.
    pub fn new_session(&mut self, pk: u64, csrftoken: &str) -> BTreeMap<String, String> {
        let sessionid = format!("{pk}%3A{}%3A28%3AAY{}", random_token(14), random_token(24));
        self.sessions
            .insert(sessionid.clone(), SessionRecord::new(pk, csrftoken));
        BTreeMap::from([
            ("sessionid".to_owned(), sessionid),
            ("csrftoken".to_owned(), csrftoken.to_owned()),
            ("ds_user_id".to_owned(), pk.to_string()),
            ("mid".to_owned(), format!("Z{}", random_token(27))),
            (
                "ig_did".to_owned(),
                uuid::Uuid::new_v4().to_string().to_uppercase(),
            ),
        ])
    }

    pub fn account(&self, pk: u64) -> Result<&AccountRecord, SimError> {
        self.accounts.get(&pk).ok_or(SimError::UserNotFound {
            user: pk.to_string(),
        })
    }

    fn account_mut(&mut self, pk: u64) -> Result<&mut AccountRecord, SimError> {
        self.accounts.get_mut(&pk).ok_or(SimError::UserNotFound {
            user: pk.to_string(),
        })
    }

    pub fn account_by_username(&self, username: &str) -> Option<&AccountRecord> {
        let wanted = username.trim().trim_start_matches('@').to_lowercase();
        self.accounts
            .values()
            .find(|account| account.username.to_lowercase() == wanted)
    }

    pub fn set_two_factor(&mut self, pk: u64, code: Option<String>) -> Result<(), SimError> {
        self.account_mut(pk)?.two_factor_code = code;
        Ok(())
    }

    pub fn flag_challenge(&mut self, pk: u64, flagged: bool) -> Result<(), SimError> {
        self.account_mut(pk)?.challenge = flagged;
        Ok(())
    }

    pub fn flag_checkpoint(&mut self, pk: u64, flagged: bool) -> Result<(), SimError> {
        self.account_mut(pk)?.checkpoint = flagged;
        Ok(())
    }

    /// Ends every live session of `pk`: their next requests answer `end`'s body.
    pub fn kill_sessions(&mut self, pk: u64, end: SessionEnd) -> Result<(), SimError> {
        self.account(pk)?;
        for session in self.sessions.values_mut() {
            if session.pk == pk && session.ended.is_none() {
                session.ended = Some(end);
            }
        }
        Ok(())
    }

    /// The offences still counting against the live sessions of `pk`.
    pub fn strikes(&mut self, pk: u64) -> Result<usize, SimError> {
        self.account(pk)?;
        let settings = self.settings;
        let now = Instant::now();
        Ok(self
            .sessions
            .values_mut()
            .filter(|session| session.pk == pk && session.ended.is_none())
            .map(|session| session.strikes(&settings, now))
            .sum())
    }

    pub fn expire_sessions(&mut self, pk: u64) -> Result<(), SimError> {
        self.account(pk)?;
        self.sessions.retain(|_, session| session.pk != pk);
        let sessions = &self.sessions;
        self.cursors
            .forget_sessions(|session| sessions.contains_key(session));
        Ok(())
    }

    pub fn set_presence(&mut self, pk: u64, presence: Presence) -> Result<(), SimError> {
        self.account_mut(pk)?.presence = presence;
        Ok(())
    }

    // ---- faults, rate limit, log ----

    pub fn set_rate_limit(&mut self, limit: Option<(usize, Duration)>) {
        self.rate_limit = limit.map(|(max_requests, per)| RateLimiter {
            max_requests,
            per,
            recent: VecDeque::new(),
        });
    }

    /// Counts one API request against the rate limit; false when it is over the limit.
    pub fn admit_request(&mut self) -> bool {
        let Some(limiter) = self.rate_limit.as_mut() else {
            return true;
        };
        let now = Instant::now();
        while limiter
            .recent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= limiter.per)
        {
            limiter.recent.pop_front();
        }
        if limiter.recent.len() >= limiter.max_requests {
            return false;
        }
        limiter.recent.push_back(now);
        true
    }

    /// Counts one request of `session` against its budget
    /// ([`Settings::session_requests_per_window`]).
    pub fn admit_session_request(&mut self, session: &str, pk: u64) -> Result<(), SimError> {
        let settings = self.settings;
        let Some(record) = self.sessions.get_mut(session) else {
            return Ok(());
        };
        match record.admit_request(&settings, Instant::now()) {
            Ok(()) => Ok(()),
            Err(offence) => Err(self.answer_offence(pk, offence)),
        }
    }

    /// The error an offence is answered with; a challenge flags the account, so every
    /// session of it answers `challenge_required` until the challenge is passed.
    fn answer_offence(&mut self, pk: u64, offence: Offence) -> SimError {
        match offence {
            Offence::RateLimited => SimError::RateLimited,
            Offence::FeedbackRequired => SimError::FeedbackRequired { pk },
            Offence::Challenge => {
                if let Some(account) = self.accounts.get_mut(&pk) {
                    account.challenge = true;
                }
                SimError::ChallengeRequired { pk }
            }
        }
    }

    /// Counts one send of `session` against the spam limit
    /// ([`Settings::send_limit_per_minute`]); a send over it is refused with
    /// `feedback_required`, not counted, and is a strike against the session: a client
    /// that keeps sending into the block is escalated to a challenge.
    pub fn admit_send(&mut self, session: &str, pk: u64) -> Result<(), SimError> {
        let settings = self.settings;
        if let Some(record) = self.sessions.get_mut(session) {
            if let Err(offence) = record.admit_send(&settings, Instant::now()) {
                return Err(self.answer_offence(pk, offence));
            }
        }
        let limit = self.settings.send_limit_per_minute as usize;
        if limit == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let window = self.send_windows.entry(session.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(60))
        {
            window.pop_front();
        }
        if window.len() >= limit {
            let offence = match self.sessions.get_mut(session) {
                Some(record) => record.strike(&settings, now, Offence::FeedbackRequired),
                None => Offence::FeedbackRequired,
            };
            return Err(self.answer_offence(pk, offence));
        }
        window.push_back(now);
        Ok(())
    }

    /// Takes one use of the first fault that matches this request.
    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let index = self.faults.iter().position(|fault| {
            let prefix_matches = path.starts_with(&fault.path_prefix)
                || path
                    .strip_prefix("/api/v1/")
                    .is_some_and(|relative| relative.starts_with(&fault.path_prefix));
            let method_matches = fault
                .method
                .as_deref()
                .is_none_or(|wanted| wanted.eq_ignore_ascii_case(method));
            fault.times > 0 && prefix_matches && method_matches
        })?;
        let fault = &mut self.faults[index];
        fault.times -= 1;
        let taken = fault.clone();
        if fault.times == 0 {
            self.faults.remove(index);
        }
        Some(taken)
    }

    pub fn log_request(&mut self, entry: RequestLogEntry) {
        *self
            .request_counts
            .entry((entry.method.to_uppercase(), entry.path.clone()))
            .or_default() += 1;
        if self.request_log.len() == REQUEST_LOG_CAPACITY {
            self.request_log.pop_front();
        }
        self.request_log.push_back(entry);
    }

    pub fn request_log(&self) -> Vec<RequestLogEntry> {
        self.request_log.iter().cloned().collect()
    }

    pub fn clear_request_log(&mut self) {
        self.request_log.clear();
        self.request_counts.clear();
    }

    /// Requests with this method and path (full, or relative to `/api/v1/`), counted since
    /// the start or the last clear, beyond the log's capacity.
    pub fn request_count(&self, method: &str, path: &str) -> usize {
        let method = method.to_uppercase();
        let relative = format!("/api/v1/{}", path.trim_start_matches('/'));
        let full = self
            .request_counts
            .get(&(method.clone(), path.to_owned()))
            .copied()
            .unwrap_or(0);
        if relative == path {
            return full;
        }
        full + self
            .request_counts
            .get(&(method, relative))
            .copied()
            .unwrap_or(0)
    }

    // ---- threads ----

    pub fn thread(&self, thread_id: &str) -> Result<&ThreadRecord, SimError> {
        self.threads
            .get(thread_id.trim().trim_matches('"'))
            .ok_or_else(|| SimError::ThreadNotFound {
                thread_id: thread_id.into(),
            })
    }

    pub(crate) fn thread_mut(&mut self, thread_id: &str) -> Result<&mut ThreadRecord, SimError> {
        self.threads
            .get_mut(thread_id.trim().trim_matches('"'))
            .ok_or_else(|| SimError::ThreadNotFound {
                thread_id: thread_id.into(),
            })
    }

    /// The thread as `pk` may see it: it must exist and `pk` must be a current member.
    pub fn member_thread(&self, thread_id: &str, pk: u64) -> Result<&ThreadRecord, SimError> {
        let thread = self.thread(thread_id)?;
        if thread.members.contains(&pk) {
            Ok(thread)
        } else {
            Err(SimError::NotAMember {
                thread_id: thread_id.into(),
                pk,
            })
        }
    }

    fn member_state_mut(&mut self, thread_id: &str, pk: u64) -> Result<&mut MemberState, SimError> {
        self.member_thread(thread_id, pk)?;
        self.bump_seq(thread_id);
        let thread = self.thread_mut(thread_id)?;
        Ok(thread.member_state.entry(pk).or_default())
    }

    /// A thread of `owner` and `others`: a group when there are several others or a title.
    pub fn create_thread(
        &mut self,
        owner: u64,
        others: &[u64],
        title: Option<&str>,
    ) -> Result<String, SimError> {
        self.new_thread(owner, others, title, false, None)
    }

    /// A thread created `at_us` (µs since the epoch), for seeding history.
    pub fn create_thread_at(
        &mut self,
        owner: u64,
        others: &[u64],
        title: Option<&str>,
        at_us: u64,
    ) -> Result<String, SimError> {
        self.new_thread(owner, others, title, false, Some(at_us))
    }

    /// `create_group_thread/`: always a group, even with one other member.
    pub fn create_group(
        &mut self,
        owner: u64,
        others: &[u64],
        title: Option<&str>,
    ) -> Result<String, SimError> {
        self.new_thread(owner, others, title, true, None)
    }

    fn new_thread(
        &mut self,
        owner: u64,
        others: &[u64],
        title: Option<&str>,
        force_group: bool,
        at_us: Option<u64>,
    ) -> Result<String, SimError> {
        self.account(owner)?;
        for pk in others {
            self.account(*pk)?;
        }
        let mut members = vec![owner];
        for pk in others {
            if !members.contains(pk) {
                members.push(*pk);
            }
        }
        let is_group = force_group || members.len() > 2 || title.is_some();
        let serial = self.next_serial();
        let random: u64 = rand::thread_rng().gen_range(0..1_000_000_000);
        let thread_id = format!("340282366841710300{:012}{:09}", serial, random);
        let created_at_us = match at_us {
            Some(at) => at,
            None => self.next_timestamp_us(),
        };
        let member_state = members
            .iter()
            .map(|pk| (*pk, MemberState::default()))
            .collect();
        self.threads.insert(
            thread_id.clone(),
            ThreadRecord {
                thread_id: thread_id.clone(),
                thread_v2_id: 17_845_600_000_000_000 + serial,
                messaging_thread_key: 17_848_629_000_000_000 + serial,
                is_group,
                title: title.map(str::to_owned),
                creator: owner,
                members,
                left: Vec::new(),
                admins: if is_group { vec![owner] } else { Vec::new() },
                items: Vec::new(),
                member_state,
                created_at_us,
                next_uq_seq_id: 1,
                activity_us: 0,
                image: None,
            },
        );
        self.bump_seq(&thread_id);
        if is_group {
            let creator = self.account(owner)?.full_name.clone();
            let description = match title {
                Some(title) => format!("{creator} created the group {title}."),
                None => format!("{creator} created the group."),
            };
            self.append_item_at(
                &thread_id,
                owner,
                json!({"item_type": "action_log", "description": description}),
                None,
                None,
                at_us,
            )?;
        }
        Ok(thread_id)
    }

    /// The thread whose other members are exactly `recipients` (a 1:1 thread for one
    /// recipient), if there is one.
    pub fn find_thread_with(
        &self,
        viewer: u64,
        recipients: &[u64],
    ) -> Result<Option<String>, SimError> {
        let wanted = Self::other_members(viewer, recipients)?;
        Ok(self
            .threads
            .values()
            .find(|thread| {
                thread.members.contains(&viewer)
                    && (thread.is_group == (wanted.len() > 1))
                    && Self::other_members(viewer, &thread.members).ok().as_ref() == Some(&wanted)
            })
            .map(|thread| thread.thread_id.clone()))
    }

    /// Like [`Self::find_thread_with`], creating the thread when there is none yet.
    pub fn thread_with(&mut self, viewer: u64, recipients: &[u64]) -> Result<String, SimError> {
        if let Some(thread_id) = self.find_thread_with(viewer, recipients)? {
            return Ok(thread_id);
        }
        let others: Vec<u64> = Self::other_members(viewer, recipients)?
            .into_iter()
            .collect();
        let thread_id = self.create_thread(viewer, &others, None)?;
        // A first message to someone lands in their message requests until they accept.
        for pk in others {
            self.set_pending(&thread_id, pk, true)?;
        }
        Ok(thread_id)
    }

    fn other_members(viewer: u64, members: &[u64]) -> Result<BTreeSet<u64>, SimError> {
        let others: BTreeSet<u64> = members.iter().copied().filter(|pk| *pk != viewer).collect();
        if others.is_empty() {
            return Err(SimError::BadParameter {
                name: "recipient_users",
            });
        }
        Ok(others)
    }

    /// Adds an item sent by `from`, keeping its `client_context` (a fresh one when none is
    /// given). With `dedupe_client_context` on, a `client_context` the same sender already
    /// used in this thread returns the earlier item and adds nothing; off (the default),
    /// it makes a second item, as Instagram does not promise deduplication.
    pub fn append_item(
        &mut self,
        thread_id: &str,
        from: u64,
        kind: ItemKind,
        client_context: Option<String>,
        replied_to: Option<u128>,
    ) -> Result<u128, SimError> {
        let drifting = self.settings.drift
            && kind.get("item_type").and_then(Value::as_str) != Some(crate::drift::UNKNOWN_KIND);
        let item_id =
            self.append_item_at(thread_id, from, kind, client_context, replied_to, None)?;
        if drifting {
            self.append_item_at(
                thread_id,
                from,
                crate::drift::unknown_item(),
                None,
                None,
                None,
            )?;
        }
        Ok(item_id)
    }

    pub fn append_item_at(
        &mut self,
        thread_id: &str,
        from: u64,
        kind: ItemKind,
        client_context: Option<String>,
        replied_to: Option<u128>,
        at_us: Option<u64>,
    ) -> Result<u128, SimError> {
        let dedupe = self.settings.dedupe_client_context;
        let thread = self.member_thread(thread_id, from)?;
        if let Some(context) = client_context.as_ref().filter(|_| dedupe) {
            if let Some(existing) = thread
                .items
                .iter()
                .find(|item| item.user_id == from && &item.client_context == context)
            {
                return Ok(existing.item_id);
            }
        }
        let replied_to = match replied_to {
            Some(item_id) => Some(Box::new(thread.item(item_id)?.clone())),
            None => None,
        };
        let client_context = client_context.unwrap_or_else(new_client_context);
        let (item_type, template, payload) = self.build_payload(from, &kind, &client_context)?;
        let mut timestamp_us = match at_us {
            Some(at) => at,
            None => self.next_timestamp_us(),
        };
        let thread = self.thread_mut(thread_id)?;
        while thread
            .items
            .iter()
            .any(|item| item.timestamp_us == timestamp_us)
        {
            timestamp_us += 1;
        }
        let item_id = u128::from(timestamp_us) << 64;
        let uq_seq_id = thread.next_uq_seq_id;
        thread.next_uq_seq_id += 1;
        let item = ItemRecord {
            item_id,
            timestamp_us,
            user_id: from,
            item_type,
            template,
            payload,
            client_context,
            message_id: format!("mid.$cAAASim{:024}", timestamp_us),
            uq_seq_id,
            reactions: Vec::new(),
            replied_to,
            edited: None,
        };
        let position = thread
            .items
            .partition_point(|other| other.item_id < item_id);
        thread.items.insert(position, item);
        for state in thread.member_state.values_mut() {
            state.hidden = false;
        }
        let sender = thread.member_state.entry(from).or_default();
        sender.typing = None;
        if sender.last_seen.is_none_or(|(seen, _)| seen < item_id) {
            sender.last_seen = Some((item_id, timestamp_us));
        }
        self.bump_seq(thread_id);
        Ok(item_id)
    }

    /// Turns an [`ItemKind`] into (item_type, fixture template, payload), storing any media
    /// bytes the payload's URLs point at.
    fn build_payload(
        &mut self,
        from: u64,
        kind: &ItemKind,
        client_context: &str,
    ) -> Result<(String, &'static str, Value), SimError> {
        let item_type = kind
            .get("item_type")
            .and_then(Value::as_str)
            .ok_or(SimError::BadParameter { name: "item_type" })?
            .to_owned();
        let text = kind.get("text").and_then(Value::as_str);
        let media_type = kind.get("media_type").and_then(Value::as_u64).unwrap_or(1);
        let template = match item_type.as_str() {
            "media" if media_type == 2 => "media_video",
            "media" => "media_image",
            other => render::item_template_name(other).unwrap_or("text"),
        };
        if let Some(payload) = kind.get(&item_type) {
            return Ok((item_type, template, payload.clone()));
        }
        if render::item_template_name(&item_type).is_none() && item_type != "media" {
            return Err(SimError::UnknownItemKind { item_type });
        }
        let mut payload = render::item_payload_template(template, &item_type);
        let media_serial = self.next_serial();
        let media_pk = 3_632_500_000_000_000_000u64 + media_serial;
        match item_type.as_str() {
            "text" => {
                payload = Value::String(
                    text.ok_or(SimError::BadParameter { name: "text" })?
                        .to_owned(),
                );
            }
            "link" => {
                let text = text.ok_or(SimError::BadParameter { name: "text" })?;
                let url = kind
                    .get("url")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| first_url(text))
                    .ok_or(SimError::BadParameter { name: "link_urls" })?;
                payload["text"] = json!(text);
                payload["link_context"]["link_url"] = json!(url);
                payload["link_context"]["link_title"] = json!(url);
                payload["client_context"] = json!(client_context);
                payload["mutation_token"] = json!(client_context);
            }
            "media" => {
                let video = media_type == 2;
                let (width, height) = if video { media::VIDEO_SIZE } else { PHOTO_SIZE };
                let full = self.store_blob(
                    format!("{media_pk}.png"),
                    media::png(width, height, media_pk),
                );
                let half = self.store_blob(
                    format!("{media_pk}_half.png"),
                    media::png(width / 2, height / 2, media_pk + 1),
                );
                let video = video
                    .then(|| self.store_blob(format!("{media_pk}.mp4"), media::video(media_pk)));
                payload = media_payload(
                    payload,
                    &format!("{media_pk}_{from}"),
                    &[(full, width, height), (half, width / 2, height / 2)],
                    video.map(|url| (url, media::VIDEO_SIZE, media::VIDEO_DURATION_MS)),
                );
            }
            "voice_media" => {
                let url = self.store_blob(format!("{media_pk}.m4a"), media::voice(media_pk));
                let waveform = kind.get("waveform").cloned();
                let duration = kind.get("duration_ms").cloned();
                payload = self.voice_payload(payload, from, media_pk, url, waveform, duration)?;
            }
            "animated_media" => {
                let gif = media::gif(media_pk);
                let mp4 = media::video(media_pk);
                let (gif_size, mp4_size) = (gif.bytes.len(), mp4.bytes.len());
                let gif = self.store_blob(format!("{media_pk}.gif"), gif);
                let mp4 = self.store_blob(format!("{media_pk}.mp4"), mp4);
                let images = &mut payload["images"]["fixed_height"];
                images["url"] = json!(gif);
                images["webp"] = json!(gif);
                images["mp4"] = json!(mp4);
                images["width"] = json!(media::GIF_SIZE.0.to_string());
                images["height"] = json!(media::GIF_SIZE.1.to_string());
                images["size"] = json!(gif_size.to_string());
                images["webp_size"] = json!(gif_size.to_string());
                images["mp4_size"] = json!(mp4_size.to_string());
                payload["id"] = json!(format!("sim{media_pk}"));
                if let Some(sticker) = kind.get("is_sticker").and_then(Value::as_bool) {
                    payload["is_sticker"] = json!(sticker);
                }
            }
            "action_log" => {
                let description = kind
                    .get("description")
                    .and_then(Value::as_str)
                    .or(text)
                    .ok_or(SimError::BadParameter {
                        name: "description",
                    })?;
                payload = json!({"description": description, "bold": [], "text_attributes": []});
            }
            "like" => payload = json!("❤️"),
            _ => self.localize(&mut payload, media_pk),
        }
        if let Some(pk) = kind.get("user_pk").and_then(Value::as_u64) {
            self.share_profile(&item_type, &mut payload, pk)?;
        }
        Ok((item_type, template, payload))
    }

    /// A `voice_media` payload around the clip at `url`; the duration is the clip's own
    /// unless given.
    pub fn voice_payload(
        &self,
        mut payload: Value,
        from: u64,
        media_pk: u64,
        url: String,
        waveform: Option<Value>,
        duration_ms: Option<Value>,
    ) -> Result<Value, SimError> {
        let username = self.account(from)?.username.clone();
        let media = &mut payload["media"];
        media["id"] = json!(format!("{media_pk}_{from}"));
        media["audio"]["audio_src"] = json!(url);
        if let Some(waveform) = waveform {
            media["audio"]["waveform_data"] = waveform;
        }
        media["audio"]["duration"] = duration_ms.unwrap_or_else(|| json!(media::VOICE_DURATION_MS));
        media["user"] = json!({"pk": from, "username": username});
        Ok(payload)
    }

    /// `from` reacts (replacing their earlier reaction); the reaction keeps the
    /// `client_context` it was sent with (a fresh one when none is given).
    pub fn react(
        &mut self,
        thread_id: &str,
        item_id: u128,
        from: u64,
        emoji: Option<String>,
        client_context: Option<String>,
    ) -> Result<(), SimError> {
        self.member_thread(thread_id, from)?;
        let timestamp_us = self.next_timestamp_us();
        let item = self.thread_mut(thread_id)?.item_mut(item_id)?;
        item.reactions.retain(|reaction| reaction.sender_id != from);
        item.reactions.push(Reaction {
            sender_id: from,
            emoji,
            timestamp_us,
            client_context: client_context.unwrap_or_else(new_client_context),
        });
        self.touch(thread_id)
    }

    pub fn unreact(&mut self, thread_id: &str, item_id: u128, from: u64) -> Result<(), SimError> {
        self.member_thread(thread_id, from)?;
        let item = self.thread_mut(thread_id)?.item_mut(item_id)?;
        item.reactions.retain(|reaction| reaction.sender_id != from);
        self.touch(thread_id)
    }

    /// Removes an item; only its sender may (`by: None` is the control API, which may).
    pub fn unsend(
        &mut self,
        thread_id: &str,
        item_id: u128,
        by: Option<u64>,
    ) -> Result<(), SimError> {
        if let Some(pk) = by {
            self.member_thread(thread_id, pk)?;
        }
        let thread = self.thread_mut(thread_id)?;
        let position = thread.item_position(item_id)?;
        if let Some(pk) = by {
            if thread.items[position].user_id != pk {
                return Err(SimError::NotOwnItem {
                    item_id: item_id.to_string(),
                    pk,
                });
            }
        }
        thread.items.remove(position);
        self.touch(thread_id)
    }

    pub fn mark_seen(&mut self, thread_id: &str, pk: u64, item_id: u128) -> Result<(), SimError> {
        let thread = self.member_thread(thread_id, pk)?;
        let timestamp_us = thread.item(item_id)?.timestamp_us;
        let state = self.member_state_mut(thread_id, pk)?;
        if state.last_seen.is_none_or(|(seen, _)| seen <= item_id) {
            state.last_seen = Some((item_id, timestamp_us));
        }
        state.marked_as_unread = false;
        Ok(())
    }

    pub fn set_typing(
        &mut self,
        thread_id: &str,
        pk: u64,
        activity_status: u8,
    ) -> Result<(), SimError> {
        let state = self.member_state_mut(thread_id, pk)?;
        state.typing = Some(Typing {
            activity_status,
            at_ms: now_ms(),
        });
        Ok(())
    }

    pub fn update_member_state(
        &mut self,
        thread_id: &str,
        pk: u64,
        change: impl FnOnce(&mut MemberState),
    ) -> Result<(), SimError> {
        change(self.member_state_mut(thread_id, pk)?);
        Ok(())
    }

    pub fn set_pending(&mut self, thread_id: &str, pk: u64, pending: bool) -> Result<(), SimError> {
        self.update_member_state(thread_id, pk, |state| state.pending = pending)
    }

    pub fn leave(&mut self, thread_id: &str, pk: u64) -> Result<(), SimError> {
        self.member_thread(thread_id, pk)?;
        let name = self.account(pk)?.full_name.clone();
        self.append_item(
            thread_id,
            pk,
            json!({"item_type": "action_log", "description": format!("{name} left the group.")}),
            None,
            None,
        )?;
        let thread = self.thread_mut(thread_id)?;
        thread.members.retain(|member| *member != pk);
        thread.admins.retain(|admin| *admin != pk);
        thread.left.push(pk);
        Ok(())
    }

    pub fn update_title(&mut self, thread_id: &str, pk: u64, title: &str) -> Result<(), SimError> {
        self.member_thread(thread_id, pk)?;
        let name = self.account(pk)?.full_name.clone();
        let thread = self.thread_mut(thread_id)?;
        thread.title = Some(title.to_owned());
        self.append_item(
            thread_id,
            pk,
            json!({"item_type": "action_log", "description": format!("{name} named the group {title}.")}),
            None,
            None,
        )?;
        Ok(())
    }

    pub fn add_users(&mut self, thread_id: &str, pk: u64, users: &[u64]) -> Result<(), SimError> {
        self.member_thread(thread_id, pk)?;
        let mut names = Vec::new();
        for user in users {
            names.push(self.account(*user)?.full_name.clone());
        }
        let actor = self.account(pk)?.full_name.clone();
        let thread = self.thread_mut(thread_id)?;
        for user in users {
            if !thread.members.contains(user) {
                thread.members.push(*user);
                thread.left.retain(|left| left != user);
                thread.member_state.entry(*user).or_default();
            }
        }
        if thread.members.len() > 2 {
            thread.is_group = true;
        }
        self.append_item(
            thread_id,
            pk,
            json!({"item_type": "action_log", "description": format!("{actor} added {} to the group.", names.join(", "))}),
            None,
            None,
        )?;
        Ok(())
    }
}

/// Photo items' size (3:4, small enough to serve uncompressed).
const PHOTO_SIZE: (u32, u32) = (96, 128);

/// A `media` payload: image candidates (URL, width, height), and for a video its URL, size
/// and duration.
pub(crate) fn media_payload(
    mut payload: Value,
    media_id: &str,
    candidates: &[(String, u32, u32)],
    video: Option<(String, (u32, u32), u64)>,
) -> Value {
    payload["id"] = json!(media_id);
    payload["media_type"] = json!(if video.is_some() { 2 } else { 1 });
    let candidates: Vec<Value> = candidates
        .iter()
        .map(|(url, width, height)| json!({"width": width, "height": height, "url": url, "scans_profile": "e35"}))
        .collect();
    let (width, height) = match (&video, candidates.first()) {
        (Some((_, size, _)), _) => *size,
        (None, Some(first)) => (
            first["width"].as_u64().unwrap_or(0) as u32,
            first["height"].as_u64().unwrap_or(0) as u32,
        ),
        (None, None) => (0, 0),
    };
    payload["image_versions2"]["candidates"] = Value::Array(candidates);
    match video {
        Some((url, (video_width, video_height), duration_ms)) => {
            payload["video_versions"] = json!([
                {"type": 101, "width": video_width, "height": video_height, "url": url, "id": format!("{media_id}v")},
            ]);
            payload["video_duration"] = json!(duration_ms as f64 / 1000.0);
        }
        None => {
            if let Some(object) = payload.as_object_mut() {
                object.shift_remove("video_versions");
                object.shift_remove("video_duration");
            }
        }
    }
    payload["original_width"] = json!(width);
    payload["original_height"] = json!(height);
    payload
}

/// The first http(s) URL in a text.
pub(crate) fn first_url(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|word| word.starts_with("http://") || word.starts_with("https://"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> RequestLogEntry {
        RequestLogEntry {
            method: "GET".into(),
            path: path.into(),
            query: String::new(),
            headers: Vec::new(),
            cookies: Vec::new(),
            form_fields: Vec::new(),
            csrf_ok: None,
            www_claim: ClaimEcho::Absent,
            ig_u_rur: ClaimEcho::Absent,
            pk: None,
            status: 200,
            device: DeviceHeaders::default(),
        }
    }

    #[test]
    fn the_log_is_capped_but_counts_stay_exact() {
        let mut world = World::new("http://127.0.0.1:1".into());
        for _ in 0..REQUEST_LOG_CAPACITY {
            world.log_request(entry("/api/v1/direct_v2/inbox/"));
        }
        world.log_request(entry("/media/1.png"));
        assert_eq!(world.request_log().len(), REQUEST_LOG_CAPACITY);
        assert_eq!(world.request_log().last().unwrap().path, "/media/1.png");
        assert_eq!(
            world.request_count("get", "direct_v2/inbox/"),
            REQUEST_LOG_CAPACITY
        );
        assert_eq!(
            world.request_count("GET", "/api/v1/direct_v2/inbox/"),
            REQUEST_LOG_CAPACITY
        );
        assert_eq!(world.request_count("GET", "/media/1.png"), 1);
        assert_eq!(world.request_count("POST", "/media/1.png"), 0);
        world.clear_request_log();
        assert_eq!(world.request_count("GET", "direct_v2/inbox/"), 0);
    }

    #[test]
    fn timestamps_and_item_ids_strictly_increase() {
        let mut world = World::new("http://127.0.0.1:1".into());
        let me = world.create_account("a", "A A", None).unwrap().pk;
        let other = world.create_account("b", "B B", None).unwrap().pk;
        let thread = world.create_thread(me, &[other], None).unwrap();
        let ids: Vec<u128> = (0..50)
            .map(|index| {
                world
                    .append_item(
                        &thread,
                        me,
                        json!({"item_type": "text", "text": index.to_string()}),
                        None,
                        None,
                    )
                    .unwrap()
            })
            .collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(
            ids.iter().all(|id| id & u128::from(u64::MAX) == 0),
            "low 64 bits are zero"
        );
    }
}
