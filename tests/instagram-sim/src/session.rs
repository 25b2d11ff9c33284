//! One API session as Instagram keeps it: the csrftoken and www-claim it rotates (and
//! refuses once stale), the per-session request budget whose offences escalate from 429 to
//! `feedback_required` to a challenge and decay only with time, and how a session ended.

use std::collections::VecDeque;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::settings::Settings;
use crate::world::random_token;

/// Why a session stopped working; its next request answers the matching fixture body.
/// The fixtures do not say which `logout_reason` number goes with which cause: the
/// pairings are ours, the bodies are Instagram's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    /// Instagram timed the session out: 403 `login_required`, `logout_reason` 8.
    Expired,
    /// The account logged in on another device, which ended this one: 403
    /// `user_has_logged_out`, `logout_reason` 3.
    LoggedInElsewhere,
    /// The password was changed: 403 `login_required`, `logout_reason` 2 (the short shape).
    PasswordChanged,
}

impl SessionEnd {
    /// The fixture (errors/) this end is answered with.
    pub(crate) fn fixture(self) -> &'static str {
        match self {
            SessionEnd::Expired => "login_required_403",
            SessionEnd::LoggedInElsewhere => "user_has_logged_out_403",
            SessionEnd::PasswordChanged => "login_required_legacy_403",
        }
    }
}

/// How a request over a session's budget is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offence {
    /// 429 "Please wait a few minutes before you try again."
    RateLimited,
    /// 400 `feedback_required` (sends only).
    FeedbackRequired,
    /// Enough strikes: the account is flagged until its challenge is passed.
    Challenge,
}

pub(crate) struct SessionRecord {
    pub pk: u64,
    pub www_claim: String,
    pub csrftoken: String,
    /// The routing hint the app is told in `ig-set-ig-u-rur` and echoes in
    /// `ig-u-rur`; it changes with every rotation.
    pub ig_u_rur: String,
    /// The claim the latest rotation replaced (accepted until the grace period ends);
    /// `None` before the first rotation.
    retired_claim: Option<String>,
    rotated_at: Instant,
    /// When this session's recent requests were made (the budget's sliding window).
    requests: VecDeque<Instant>,
    /// When its recent offences were made; they count until `strike_decay` has passed.
    strikes: VecDeque<Instant>,
    pub ended: Option<SessionEnd>,
    /// The `X-IG-Device-ID` of the session's first request that sent one: the
    /// device it belongs to from then on.
    pub device_id: Option<String>,
}

impl SessionRecord {
    pub fn new(pk: u64, csrftoken: &str) -> SessionRecord {
        SessionRecord {
            pk,
            www_claim: new_claim(),
            csrftoken: csrftoken.to_owned(),
            ig_u_rur: new_rur(pk),
            retired_claim: None,
            rotated_at: Instant::now(),
            requests: VecDeque::new(),
            strikes: VecDeque::new(),
            ended: None,
            device_id: None,
        }
    }

    /// Binds the session to the first device id it is used with and refuses
    /// another: Instagram does not see a logged-in app move to another phone,
    /// it sees a stolen session, and asks the account to confirm it
    /// (`challenge_required`). Requests without the header (the web) pass.
    pub fn check_device(&mut self, sent: Option<&str>) -> Result<(), SimError> {
        let Some(sent) = sent else {
            return Ok(());
        };
        match &self.device_id {
            None => {
                self.device_id = Some(sent.to_owned());
                Ok(())
            }
            Some(bound) if bound == sent => Ok(()),
            Some(_) => Err(SimError::ChallengeRequired { pk: self.pk }),
        }
    }

    /// Gives the session a new csrftoken and claim when its rotation period has passed.
    pub fn rotate_if_due(&mut self, settings: &Settings, now: Instant) {
        if settings.rotation_period.is_zero()
            || now.duration_since(self.rotated_at) < settings.rotation_period
        {
            return;
        }
        self.csrftoken = random_token(32);
        self.retired_claim = Some(std::mem::replace(&mut self.www_claim, new_claim()));
        self.ig_u_rur = new_rur(self.pk);
        self.rotated_at = now;
    }

    fn in_grace(&self, settings: &Settings, now: Instant) -> bool {
        now.duration_since(self.rotated_at) < settings.rotation_grace
    }

    /// Refuses a request that still sends a value the latest rotation retired, once the
    /// grace period is over. Before any rotation only the double-submit CSRF check (in
    /// the caller) applies, as a pasted browser session may carry any csrftoken.
    ///
    /// No capture shows Instagram's answer to a stale claim; clients that ignore
    /// `x-ig-set-www-claim` are reported to be logged out, so it is `login_required`.
    /// A stale csrftoken gets the CSRF failure Instagram gives any wrong token.
    pub fn check_rotated(
        &self,
        settings: &Settings,
        now: Instant,
        csrftoken: Option<&str>,
        claim: Option<&str>,
    ) -> Result<(), SimError> {
        let Some(retired_claim) = &self.retired_claim else {
            return Ok(());
        };
        if self.in_grace(settings, now) {
            return Ok(());
        }
        if claim.is_some_and(|claim| claim == retired_claim) {
            return Err(SimError::LoginRequired);
        }
        if csrftoken.is_some_and(|token| token != self.csrftoken) {
            return Err(SimError::CsrfMismatch);
        }
        Ok(())
    }

    fn forget_old(&mut self, settings: &Settings, now: Instant) {
        while self
            .requests
            .front()
            .is_some_and(|at| now.duration_since(*at) >= settings.rate_window)
        {
            self.requests.pop_front();
        }
        while self
            .strikes
            .front()
            .is_some_and(|at| now.duration_since(*at) >= settings.strike_decay)
        {
            self.strikes.pop_front();
        }
    }

    /// Records an offence and says how it is answered: `usual` until the strikes reach
    /// the challenge threshold.
    pub fn strike(&mut self, settings: &Settings, now: Instant, usual: Offence) -> Offence {
        self.strikes.push_back(now);
        if settings.strikes_for_challenge > 0
            && self.strikes.len() >= settings.strikes_for_challenge as usize
        {
            Offence::Challenge
        } else {
            usual
        }
    }

    /// Counts one request against the session's budget; a request over it is refused
    /// (and not counted) with a strike.
    pub fn admit_request(&mut self, settings: &Settings, now: Instant) -> Result<(), Offence> {
        let limit = settings.session_requests_per_window as usize;
        if limit == 0 {
            return Ok(());
        }
        self.forget_old(settings, now);
        if self.requests.len() >= limit {
            return Err(self.strike(settings, now, Offence::RateLimited));
        }
        self.requests.push_back(now);
        Ok(())
    }

    /// A send while the session has `strikes_for_feedback` strikes is action-blocked:
    /// refused with `feedback_required`, which is one more strike.
    pub fn admit_send(&mut self, settings: &Settings, now: Instant) -> Result<(), Offence> {
        self.forget_old(settings, now);
        if settings.strikes_for_feedback > 0
            && self.strikes.len() >= settings.strikes_for_feedback as usize
        {
            return Err(self.strike(settings, now, Offence::FeedbackRequired));
        }
        Ok(())
    }

    /// How many offences still count against the session.
    pub fn strikes(&mut self, settings: &Settings, now: Instant) -> usize {
        self.forget_old(settings, now);
        self.strikes.len()
    }
}

fn new_claim() -> String {
    format!("hmac.AR{}", random_token(40))
}

/// Instagram's shape: a data-centre name, the account, an expiry and a signature.
fn new_rur(pk: u64) -> String {
    format!("\"CLN\\054{pk}\\0541800000000:01f{}\"", random_token(40))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn strict() -> Settings {
        Settings {
            session_requests_per_window: 2,
            rate_window: Duration::from_secs(60),
            strikes_for_feedback: 2,
            strikes_for_challenge: 4,
            strike_decay: Duration::from_secs(600),
            ..Settings::default()
        }
    }

    #[test]
    fn offences_escalate_and_decay_with_time_only() {
        let settings = strict();
        let start = Instant::now();
        let mut session = SessionRecord::new(1, "token");
        assert_eq!(session.admit_request(&settings, start), Ok(()));
        assert_eq!(session.admit_request(&settings, start), Ok(()));
        assert_eq!(
            session.admit_request(&settings, start),
            Err(Offence::RateLimited)
        );
        assert_eq!(session.admit_send(&settings, start), Ok(()));
        assert_eq!(
            session.admit_request(&settings, start),
            Err(Offence::RateLimited)
        );
        assert_eq!(
            session.admit_send(&settings, start),
            Err(Offence::FeedbackRequired)
        );
        assert_eq!(
            session.admit_send(&settings, start),
            Err(Offence::Challenge)
        );
        let window_later = start + Duration::from_secs(61);
        assert_eq!(session.admit_request(&settings, window_later), Ok(()));
        assert_eq!(
            session.admit_send(&settings, window_later),
            Err(Offence::Challenge),
            "a fresh window does not lift the block"
        );
        let decayed = start + Duration::from_secs(650);
        assert_eq!(session.strikes(&settings, decayed), 1);
        assert_eq!(session.admit_send(&settings, decayed), Ok(()));
    }

    #[test]
    fn retired_values_are_refused_after_the_grace_period() {
        let settings = Settings {
            rotation_period: Duration::from_secs(100),
            rotation_grace: Duration::from_secs(10),
            ..Settings::default()
        };
        let mut session = SessionRecord::new(1, "first");
        let start = Instant::now();
        let first_claim = session.www_claim.clone();
        session.rotate_if_due(&settings, start + Duration::from_secs(50));
        assert_eq!(session.csrftoken, "first", "not due yet");
        let rotated = start + Duration::from_secs(100);
        session.rotate_if_due(&settings, rotated);
        assert_ne!(session.csrftoken, "first");
        assert_ne!(session.www_claim, first_claim);
        let within = rotated + Duration::from_secs(5);
        assert!(session
            .check_rotated(&settings, within, Some("first"), Some(&first_claim))
            .is_ok());
        let past = rotated + Duration::from_secs(11);
        assert!(matches!(
            session.check_rotated(&settings, past, None, Some(&first_claim)),
            Err(SimError::LoginRequired)
        ));
        assert!(matches!(
            session.check_rotated(&settings, past, Some("first"), None),
            Err(SimError::CsrfMismatch)
        ));
        let current = (session.csrftoken.clone(), session.www_claim.clone());
        assert!(session
            .check_rotated(&settings, past, Some(&current.0), Some(&current.1))
            .is_ok());
    }
}
