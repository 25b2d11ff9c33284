//! A login's request budget: a token bucket per kind of request (reads, writes) that paces
//! requests to what a person could do, and a cool-down after the platform says "too many"
//! (a rate limit, an action block) during which requests are refused without being sent,
//! growing with repeats and forgetting them after a quiet period.
//!
//! Attached to a connector with [`Connector::with_budget`](super::http::Connector::with_budget),
//! it sees every request of that connector: each waits for a token of its kind, or fails at
//! once with [`ConnectorError::CoolingDown`](super::session::ConnectorError::CoolingDown)
//! while a cool-down lasts. The clock is injectable so the rules are tested without sleeping.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a request costs from: actions marked `readonly` in the spec read, all others write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Read,
    Write,
}

/// One kind's bucket: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketRule {
    pub burst: u32,
    pub per_minute: u32,
}

/// How long requests pause after the platform refused one for going too fast: `base` the
/// first time, doubled at each repeat up to `max`; repeats are forgotten once `forget_after`
/// has passed since the last cool-down ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoolDownRule {
    pub base: Duration,
    pub max: Duration,
    pub forget_after: Duration,
}

/// A budget's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetRules {
    pub reads: BucketRule,
    pub writes: BucketRule,
    pub cool_down: CoolDownRule,
}

/// What the platform said that started a cool-down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoolDownCause {
    /// Too many requests (429, "Please wait a few minutes").
    RateLimited,
    /// The account may not do this for a while (Instagram's `feedback_required`).
    ActionBlocked,
}

/// A cool-down in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoolDown {
    /// Until it ends.
    pub remaining: Duration,
    pub cause: CoolDownCause,
    /// Cool-downs in the current series, this one included (1 for the first).
    pub repeat: u32,
}

/// Where a budget reads the time (tests step it by hand).
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The longest cool-down a platform's `Retry-After` can ask for.
const LONGEST_ASKED: Duration = Duration::from_secs(7 * 24 * 3600);

/// Token buckets and the cool-down of one login, shared by all its connector clones.
pub struct RequestBudget {
    rules: BudgetRules,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl fmt::Debug for RequestBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBudget")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

struct Bucket {
    /// Below zero while requests wait for tokens already promised to them.
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(rule: BucketRule, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rule.burst),
            updated: now,
        }
    }

    fn refill(&mut self, rule: BucketRule, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second(rule)).min(f64::from(rule.burst.max(1)));
        self.updated = now;
    }
}

fn per_second(rule: BucketRule) -> f64 {
    f64::from(rule.per_minute.max(1)) / 60.0
}

struct State {
    reads: Bucket,
    writes: Bucket,
    /// The current or last cool-down's end.
    until: Option<Instant>,
    cause: CoolDownCause,
    /// Cool-downs in the current series.
    repeats: u32,
    /// Whether the current series was reported ([`RequestBudget::take_unreported`]).
    reported: bool,
}

impl RequestBudget {
    pub fn new(rules: BudgetRules) -> RequestBudget {
        RequestBudget::with_clock(rules, Arc::new(SystemClock))
    }

    pub fn with_clock(rules: BudgetRules, clock: Arc<dyn Clock>) -> RequestBudget {
        let now = clock.now();
        RequestBudget {
            state: Mutex::new(State {
                reads: Bucket::full(rules.reads, now),
                writes: Bucket::full(rules.writes, now),
                until: None,
                cause: CoolDownCause::RateLimited,
                repeats: 0,
                reported: false,
            }),
            rules,
            clock,
        }
    }

    pub fn rules(&self) -> &BudgetRules {
        &self.rules
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a token for a request of `kind`: how long the request must wait before it
    /// goes (zero while the bucket has tokens), or the cool-down that refuses it.
    pub fn reserve(&self, kind: RequestKind) -> Result<Duration, CoolDown> {
        let now = self.clock.now();
        let mut state = self.state();
        if let Some(cool_down) = active(&state, now) {
            return Err(cool_down);
        }
        let rule = self.rule(kind);
        let bucket = bucket(&mut state, kind);
        bucket.refill(rule, now);
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 {
            return Ok(Duration::ZERO);
        }
        Ok(Duration::from_secs_f64(-bucket.tokens / per_second(rule)))
    }

    /// Gives back a token taken by [`RequestBudget::reserve`] for a request that was not sent.
    pub fn refund(&self, kind: RequestKind) {
        let rule = self.rule(kind);
        let mut state = self.state();
        let bucket = bucket(&mut state, kind);
        bucket.tokens = (bucket.tokens + 1.0).min(f64::from(rule.burst.max(1)));
    }

    /// Waits for a token of `kind`; refused at once, or after the wait, while a cool-down
    /// lasts.
    pub async fn admit(&self, kind: RequestKind) -> Result<(), CoolDown> {
        let wait = self.reserve(kind)?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
            if let Some(cool_down) = self.cooling_down() {
                self.refund(kind);
                return Err(cool_down);
            }
        }
        Ok(())
    }

    /// The platform refused a request for going too fast: starts a cool-down, `retry_after`
    /// at least (when it said), twice as long as the previous one of the series. Refusals of
    /// requests that were under way when a cool-down started belong to it and change nothing
    /// but a longer `retry_after`.
    pub fn record_refusal(&self, cause: CoolDownCause, retry_after: Option<Duration>) -> CoolDown {
        let now = self.clock.now();
        let rule = self.rules.cool_down;
        let mut state = self.state();
        // A Retry-After beyond a week is taken as a week (and cannot overflow the clock).
        let asked = retry_after.unwrap_or_default().min(LONGEST_ASKED);
        let until = if let Some(until) = state.until.filter(|until| *until > now) {
            until.max(now + asked)
        } else {
            let quiet = state
                .until
                .is_some_and(|until| now.saturating_duration_since(until) >= rule.forget_after);
            if quiet {
                state.repeats = 0;
                state.reported = false;
            }
            let doublings = state.repeats.min(31);
            let length = rule
                .base
                .saturating_mul(2u32.saturating_pow(doublings))
                .min(rule.max)
                .max(asked);
            state.repeats = state.repeats.saturating_add(1);
            state.cause = cause;
            now + length
        };
        state.until = Some(until);
        CoolDown {
            remaining: until.saturating_duration_since(now),
            cause: state.cause,
            repeat: state.repeats,
        }
    }

    /// Takes up a cool-down an earlier process of the bridge was in (its
    /// `remaining` time, cause and place in its series), as reported already:
    /// a restart does not end a pause Instagram asked for, nor tell the user
    /// again.
    pub fn resume_cool_down(&self, remaining: Duration, cause: CoolDownCause, repeat: u32) {
        let now = self.clock.now();
        let mut state = self.state();
        state.until = Some(now + remaining.min(LONGEST_ASKED));
        state.cause = cause;
        state.repeats = repeat.max(1);
        state.reported = true;
    }

    /// The cool-down in force, if any.
    pub fn cooling_down(&self) -> Option<CoolDown> {
        active(&self.state(), self.clock.now())
    }

    /// The cool-down in force, the first time it is asked for in its series (repeats
    /// before the series is forgotten are not reported again): whoever tells the user
    /// does so once.
    pub fn take_unreported(&self) -> Option<CoolDown> {
        let now = self.clock.now();
        let mut state = self.state();
        let cool_down = active(&state, now)?;
        if state.reported {
            return None;
        }
        state.reported = true;
        Some(cool_down)
    }

    /// Whether a reported series of cool-downs is over (its repeats forgotten after the
    /// quiet period), the first time it is asked once it is: whoever said the requests
    /// were paused says they are back to normal, once.
    pub fn take_recovered(&self) -> bool {
        let now = self.clock.now();
        let forget_after = self.rules.cool_down.forget_after;
        let mut state = self.state();
        let over = state
            .until
            .is_none_or(|until| now.saturating_duration_since(until) >= forget_after);
        if !state.reported || !over {
            return false;
        }
        state.reported = false;
        state.repeats = 0;
        true
    }

    fn rule(&self, kind: RequestKind) -> BucketRule {
        match kind {
            RequestKind::Read => self.rules.reads,
            RequestKind::Write => self.rules.writes,
        }
    }
}

fn bucket(state: &mut State, kind: RequestKind) -> &mut Bucket {
    match kind {
        RequestKind::Read => &mut state.reads,
        RequestKind::Write => &mut state.writes,
    }
}

fn active(state: &State, now: Instant) -> Option<CoolDown> {
    let until = state.until.filter(|until| *until > now)?;
    Some(CoolDown {
        remaining: until - now,
        cause: state.cause,
        repeat: state.repeats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock moved by hand.
    struct StepClock(Mutex<Instant>);

    impl StepClock {
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for StepClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    const SECOND: Duration = Duration::from_secs(1);
    const MINUTE: Duration = Duration::from_secs(60);

    fn budget() -> (RequestBudget, Arc<StepClock>) {
        let clock = Arc::new(StepClock(Mutex::new(Instant::now())));
        let rules = BudgetRules {
            reads: BucketRule {
                burst: 3,
                per_minute: 60,
            },
            writes: BucketRule {
                burst: 2,
                per_minute: 20,
            },
            cool_down: CoolDownRule {
                base: MINUTE,
                max: 4 * MINUTE,
                forget_after: 10 * MINUTE,
            },
        };
        (RequestBudget::with_clock(rules, clock.clone()), clock)
    }

    #[test]
    fn a_burst_goes_at_once_and_the_rest_at_the_sustained_rate() {
        let (budget, clock) = budget();
        assert_eq!(budget.reserve(RequestKind::Write), Ok(Duration::ZERO));
        assert_eq!(budget.reserve(RequestKind::Write), Ok(Duration::ZERO));
        // 20 a minute: one every 3 s, each waiting behind those already promised.
        assert_eq!(budget.reserve(RequestKind::Write), Ok(3 * SECOND));
        assert_eq!(budget.reserve(RequestKind::Write), Ok(6 * SECOND));
        // Reads have their own bucket.
        assert_eq!(budget.reserve(RequestKind::Read), Ok(Duration::ZERO));

        clock.advance(6 * SECOND);
        assert_eq!(budget.reserve(RequestKind::Write), Ok(3 * SECOND));
        budget.refund(RequestKind::Write);
        clock.advance(MINUTE);
        // Refilled up to the burst, no further.
        assert_eq!(budget.reserve(RequestKind::Write), Ok(Duration::ZERO));
        assert_eq!(budget.reserve(RequestKind::Write), Ok(Duration::ZERO));
        assert_eq!(budget.reserve(RequestKind::Write), Ok(3 * SECOND));
    }

    #[test]
    fn a_cool_down_refuses_every_request_until_it_ends() {
        let (budget, clock) = budget();
        assert_eq!(budget.cooling_down(), None);
        let started = budget.record_refusal(CoolDownCause::ActionBlocked, None);
        assert_eq!(
            started,
            CoolDown {
                remaining: MINUTE,
                cause: CoolDownCause::ActionBlocked,
                repeat: 1
            }
        );
        clock.advance(20 * SECOND);
        let refused = budget.reserve(RequestKind::Read).unwrap_err();
        assert_eq!(refused.remaining, 40 * SECOND);
        assert_eq!(
            budget.reserve(RequestKind::Write).unwrap_err().remaining,
            40 * SECOND
        );
        clock.advance(40 * SECOND);
        assert_eq!(budget.cooling_down(), None);
        assert_eq!(budget.reserve(RequestKind::Write), Ok(Duration::ZERO));
    }

    #[test]
    fn repeats_double_the_cool_down_up_to_the_cap_and_are_forgotten_after_quiet() {
        let (budget, clock) = budget();
        let mut lengths = Vec::new();
        for _ in 0..4 {
            let cool_down = budget.record_refusal(CoolDownCause::RateLimited, None);
            lengths.push((cool_down.remaining.as_secs() / 60, cool_down.repeat));
            clock.advance(cool_down.remaining + SECOND);
        }
        assert_eq!(lengths, [(1, 1), (2, 2), (4, 3), (4, 4)]);

        // Refusals of requests under way when it started belong to the same cool-down.
        let first = budget.record_refusal(CoolDownCause::RateLimited, None);
        clock.advance(SECOND);
        let same = budget.record_refusal(CoolDownCause::RateLimited, None);
        assert_eq!(same.repeat, first.repeat);
        assert_eq!(same.remaining, first.remaining - SECOND);
        // ... unless the platform asks for longer.
        let longer = budget.record_refusal(CoolDownCause::RateLimited, Some(10 * MINUTE));
        assert_eq!(longer.remaining, 10 * MINUTE);

        clock.advance(10 * MINUTE + 10 * MINUTE);
        let fresh = budget.record_refusal(CoolDownCause::RateLimited, Some(30 * SECOND));
        assert_eq!((fresh.remaining, fresh.repeat), (MINUTE, 1), "forgotten");
    }

    #[test]
    fn a_series_of_cool_downs_is_reported_once() {
        let (budget, clock) = budget();
        assert_eq!(budget.take_unreported(), None, "nothing to report");
        let first = budget.record_refusal(CoolDownCause::RateLimited, None);
        assert_eq!(budget.take_unreported(), Some(first));
        assert_eq!(budget.take_unreported(), None);
        clock.advance(first.remaining);
        let repeat = budget.record_refusal(CoolDownCause::ActionBlocked, None);
        assert_eq!(repeat.repeat, 2);
        assert_eq!(budget.take_unreported(), None, "a repeat of the series");
        clock.advance(repeat.remaining + 10 * MINUTE);
        budget.record_refusal(CoolDownCause::RateLimited, None);
        assert!(budget.take_unreported().is_some(), "a new series");
    }

    #[test]
    fn the_end_of_a_reported_series_is_told_once_after_the_quiet_period() {
        let (budget, clock) = budget();
        assert!(!budget.take_recovered(), "nothing was reported");
        let first = budget.record_refusal(CoolDownCause::RateLimited, None);
        budget.take_unreported();
        clock.advance(first.remaining);
        assert!(!budget.take_recovered(), "a repeat may still come");
        let repeat = budget.record_refusal(CoolDownCause::RateLimited, None);
        clock.advance(repeat.remaining + 10 * MINUTE - SECOND);
        assert!(!budget.take_recovered());
        clock.advance(SECOND);
        assert!(budget.take_recovered());
        assert!(!budget.take_recovered(), "told once");
        let fresh = budget.record_refusal(CoolDownCause::RateLimited, None);
        assert_eq!(fresh.repeat, 1, "the next one starts a new series");
        assert!(budget.take_unreported().is_some());
    }

    #[test]
    fn a_resumed_cool_down_refuses_until_it_ends_and_continues_its_series() {
        let (budget, clock) = budget();
        budget.resume_cool_down(30 * SECOND, CoolDownCause::ActionBlocked, 2);
        let refused = budget.reserve(RequestKind::Read).unwrap_err();
        assert_eq!(
            (refused.remaining, refused.cause, refused.repeat),
            (30 * SECOND, CoolDownCause::ActionBlocked, 2)
        );
        assert_eq!(budget.take_unreported(), None, "told before the restart");
        clock.advance(30 * SECOND);
        assert_eq!(budget.reserve(RequestKind::Read), Ok(Duration::ZERO));
        // The next refusal is the series' third: four times the base.
        let next = budget.record_refusal(CoolDownCause::RateLimited, None);
        assert_eq!((next.remaining, next.repeat), (4 * MINUTE, 3));
        clock.advance(4 * MINUTE + 10 * MINUTE);
        assert!(budget.take_recovered(), "the series ends as any other");
    }
}
