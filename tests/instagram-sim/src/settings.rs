//! How strictly the simulator plays Instagram: cursor lifetime, media URL lifetime, short
//! pages, drift mode, `client_context` deduplication, the spam limit on sends, how long
//! uploaded videos and voice clips take to transcode, the per-session request budget and
//! its escalation, how often session cookies and the www-claim rotate, and the cookie-consent
//! dialog of the login page. Set through [`crate::Simulator::set_settings`] or `/_sim/settings`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The largest page the server gives, whatever `limit` the client asks for.
pub const PAGE_CAP: usize = 20;

/// The default of [`Settings::send_limit_per_minute`].
pub const DEFAULT_SEND_LIMIT_PER_MINUTE: u32 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// How long an inbox or thread cursor stays valid (default 10 minutes).
    #[serde(with = "millis", rename = "cursor_ttl_ms")]
    pub cursor_ttl: Duration,
    /// How long a signed media URL stays valid (default one day; `oe=` has second precision).
    #[serde(with = "seconds", rename = "media_url_ttl_secs")]
    pub media_url_ttl: Duration,
    /// Pages shorter than the limit while `has_older` is true.
    pub short_pages: bool,
    /// Strings for numbers, missing optional keys, unknown item kinds.
    pub drift: bool,
    /// A send repeating a `client_context` the same sender already used in the thread
    /// returns the earlier item instead of adding one. Off by default: Instagram does not
    /// promise it (WRITE-FLOWS.md §7), so a client must not count on it.
    pub dedupe_client_context: bool,
    /// Sends (broadcasts other than typing) one session may make in any 60 seconds before
    /// Instagram answers the DM spam warning (400 `feedback_required`); 0 turns the limit
    /// off. Default 30: far more than a person types, so only a runaway client meets it.
    pub send_limit_per_minute: u32,
    /// How many broadcasts of a fresh video or voice upload answer 202 "Transcode not
    /// finished yet." before it can be sent (default 1: the first attempt).
    pub transcode_attempts: u32,
    /// The login page shows the cookie-consent dialog Instagram shows EU visitors, and
    /// takes no login until a choice is made.
    #[serde(default)]
    pub consent_dialog: bool,
    /// Requests one session may make in any `rate_window` before Instagram answers 429
    /// "Please wait a few minutes"; 0 turns the budget off. Default 1200 a minute: no
    /// person comes near it, nor do the tests' accelerated pollers (a poll every 200 ms).
    pub session_requests_per_window: u32,
    /// The sliding window of `session_requests_per_window` (default 60 s).
    #[serde(with = "millis", rename = "rate_window_ms")]
    pub rate_window: Duration,
    /// Offences (refused requests) a session may hold before its sends answer
    /// `feedback_required` (default 3; 0: never).
    pub strikes_for_feedback: u32,
    /// Offences after which the account is flagged with `challenge_required` until the
    /// challenge is passed (default 10; 0: never).
    pub strikes_for_challenge: u32,
    /// How long an offence counts (default one hour): the escalation cools down only with
    /// time.
    #[serde(with = "millis", rename = "strike_decay_ms")]
    pub strike_decay: Duration,
    /// How often a session's csrftoken (sent in `Set-Cookie`) and www-claim (sent in
    /// `x-ig-set-www-claim`) are replaced (default 12 hours; 0: never).
    #[serde(with = "millis", rename = "rotation_period_ms")]
    pub rotation_period: Duration,
    /// How long after a rotation the replaced values are still accepted (default 10
    /// minutes); later they are refused.
    #[serde(with = "millis", rename = "rotation_grace_ms")]
    pub rotation_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cursor_ttl: Duration::from_secs(600),
            media_url_ttl: Duration::from_secs(86_400),
            short_pages: false,
            drift: false,
            dedupe_client_context: false,
            send_limit_per_minute: DEFAULT_SEND_LIMIT_PER_MINUTE,
            transcode_attempts: 1,
            consent_dialog: false,
            session_requests_per_window: 1200,
            rate_window: Duration::from_secs(60),
            strikes_for_feedback: 3,
            strikes_for_challenge: 10,
            strike_decay: Duration::from_secs(3600),
            rotation_period: Duration::from_secs(12 * 3600),
            rotation_grace: Duration::from_secs(600),
        }
    }
}

/// A change to some settings (the control API's body): absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct SettingsChange {
    pub cursor_ttl_ms: Option<u64>,
    pub media_url_ttl_secs: Option<u64>,
    pub short_pages: Option<bool>,
    pub drift: Option<bool>,
    pub dedupe_client_context: Option<bool>,
    pub send_limit_per_minute: Option<u32>,
    pub transcode_attempts: Option<u32>,
    pub consent_dialog: Option<bool>,
    pub session_requests_per_window: Option<u32>,
    pub rate_window_ms: Option<u64>,
    pub strikes_for_feedback: Option<u32>,
    pub strikes_for_challenge: Option<u32>,
    pub strike_decay_ms: Option<u64>,
    pub rotation_period_ms: Option<u64>,
    pub rotation_grace_ms: Option<u64>,
}

impl SettingsChange {
    pub fn apply(&self, settings: &mut Settings) {
        if let Some(ms) = self.cursor_ttl_ms {
            settings.cursor_ttl = Duration::from_millis(ms);
        }
        if let Some(secs) = self.media_url_ttl_secs {
            settings.media_url_ttl = Duration::from_secs(secs);
        }
        if let Some(short_pages) = self.short_pages {
            settings.short_pages = short_pages;
        }
        if let Some(drift) = self.drift {
            settings.drift = drift;
        }
        if let Some(dedupe) = self.dedupe_client_context {
            settings.dedupe_client_context = dedupe;
        }
        if let Some(limit) = self.send_limit_per_minute {
            settings.send_limit_per_minute = limit;
        }
        if let Some(attempts) = self.transcode_attempts {
            settings.transcode_attempts = attempts;
        }
        if let Some(consent_dialog) = self.consent_dialog {
            settings.consent_dialog = consent_dialog;
        }
        if let Some(limit) = self.session_requests_per_window {
            settings.session_requests_per_window = limit;
        }
        if let Some(ms) = self.rate_window_ms {
            settings.rate_window = Duration::from_millis(ms);
        }
        if let Some(strikes) = self.strikes_for_feedback {
            settings.strikes_for_feedback = strikes;
        }
        if let Some(strikes) = self.strikes_for_challenge {
            settings.strikes_for_challenge = strikes;
        }
        if let Some(ms) = self.strike_decay_ms {
            settings.strike_decay = Duration::from_millis(ms);
        }
        if let Some(ms) = self.rotation_period_ms {
            settings.rotation_period = Duration::from_millis(ms);
        }
        if let Some(ms) = self.rotation_grace_ms {
            settings.rotation_grace = Duration::from_millis(ms);
        }
    }
}

/// How many of `available` items (or threads) a page holds for `limit`: at most
/// [`PAGE_CAP`], and in short-pages mode half of that when a full page would not reach the
/// oldest one (so the short page still says `has_older`).
pub fn page_size(limit: usize, available: usize, settings: &Settings) -> usize {
    let full = limit.min(PAGE_CAP).min(available);
    if settings.short_pages && available > full {
        full.div_ceil(2)
    } else {
        full
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}

mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_capped_and_short_pages_leave_items_behind() {
        let normal = Settings::default();
        assert_eq!(page_size(100, 45, &normal), 20);
        assert_eq!(page_size(7, 45, &normal), 7);
        assert_eq!(page_size(20, 3, &normal), 3);
        let short = Settings {
            short_pages: true,
            ..Settings::default()
        };
        assert_eq!(page_size(20, 45, &short), 10);
        assert_eq!(page_size(7, 45, &short), 4);
        assert_eq!(page_size(20, 15, &short), 15, "the last page is whole");
        assert_eq!(page_size(1, 5, &short), 1);
    }
}
