//! When a login's poller polls next: the short interval while a chat had
//! activity recently, doubling towards the idle interval when all is quiet,
//! exponential backoff after errors (at least what a rate limit asks for),
//! and random jitter on every wait so many logins do not poll in step. The
//! jitter only lengthens a wait, so an interval bounds the request rate.

use std::time::Duration;

use rand::Rng;

use crate::config::PollingConfig;

/// The poll intervals of one login and what they depend on.
#[derive(Debug, Clone)]
pub struct Schedule {
    active: Duration,
    idle: Duration,
    active_window: Duration,
    jitter: f64,
    max_backoff: Duration,
    /// Polls since the last activity was outside the active window.
    quiet_polls: u32,
    /// Failed polls in a row.
    failures: u32,
    /// The least wait a rate limit asked for, applied to the next wait.
    retry_after: Option<Duration>,
}

impl Schedule {
    pub fn new(config: &PollingConfig) -> Schedule {
        Schedule {
            active: Duration::from_millis(config.active_interval_ms),
            idle: Duration::from_millis(config.idle_interval_ms),
            active_window: Duration::from_millis(config.active_window_ms),
            jitter: config.jitter_percent as f64 / 100.0,
            max_backoff: Duration::from_millis(config.max_backoff_ms),
            quiet_polls: 0,
            failures: 0,
            retry_after: None,
        }
    }

    /// A poll succeeded; `since_activity` is how long ago the newest
    /// activity in any of the login's chats was (`None`: unknown, no chats).
    pub fn succeeded(&mut self, since_activity: Option<Duration>) {
        self.failures = 0;
        self.retry_after = None;
        match since_activity {
            Some(since) if since <= self.active_window => self.quiet_polls = 0,
            _ => self.quiet_polls = self.quiet_polls.saturating_add(1),
        }
    }

    /// A poll failed in a way worth retrying; `retry_after` is what a rate
    /// limit asked for, if anything.
    pub fn failed(&mut self, retry_after: Option<Duration>) {
        self.failures = self.failures.saturating_add(1);
        self.retry_after = retry_after;
    }

    /// The login's requests are paused for `remaining` (its request budget
    /// is cooling down): the next poll waits at least that long. Not a
    /// failure: the backoff does not grow.
    pub fn paused(&mut self, remaining: Duration) {
        self.retry_after = Some(remaining);
    }

    /// The wait before the next poll, without jitter.
    pub fn base_delay(&self) -> Duration {
        if self.failures > 0 {
            let backoff = doubled(self.active, self.failures).min(self.max_backoff);
            return backoff.max(self.retry_after.unwrap_or_default());
        }
        doubled(self.active, self.quiet_polls).min(self.idle)
    }

    /// The wait before the next poll: the base delay lengthened by up to
    /// the jitter. (A rate limit's `Retry-After` is never shortened.)
    pub fn next_delay(&self, rng: &mut impl Rng) -> Duration {
        jittered(self.base_delay(), self.jitter, rng).max(self.retry_after.unwrap_or_default())
    }
}

/// `interval` lengthened by a random share of up to `jitter` (0.2: up to 20 %).
pub fn jittered(interval: Duration, jitter: f64, rng: &mut impl Rng) -> Duration {
    if jitter > 0.0 {
        interval.mul_f64(rng.gen_range(1.0..=1.0 + jitter))
    } else {
        interval
    }
}

/// `interval` × 2^`times`, saturating.
fn doubled(interval: Duration, times: u32) -> Duration {
    interval.saturating_mul(2u32.saturating_pow(times.min(31)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn schedule() -> Schedule {
        Schedule::new(&PollingConfig::default())
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_pause_is_waited_out_without_growing_the_backoff() {
        let mut schedule = schedule();
        schedule.succeeded(Some(SECOND));
        schedule.paused(90 * SECOND);
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(schedule.base_delay(), 3 * SECOND, "not a failure");
        assert_eq!(schedule.next_delay(&mut rng), 90 * SECOND);
        schedule.succeeded(Some(SECOND));
        assert!(schedule.next_delay(&mut rng) < 4 * SECOND);
    }

    #[test]
    fn recent_activity_keeps_the_short_interval() {
        let mut schedule = schedule();
        for _ in 0..10 {
            schedule.succeeded(Some(30 * SECOND));
            assert_eq!(schedule.base_delay(), 3 * SECOND);
        }
    }

    #[test]
    fn quiet_chats_slow_down_to_the_idle_interval() {
        let mut schedule = schedule();
        let mut delays = Vec::new();
        for _ in 0..8 {
            schedule.succeeded(Some(3600 * SECOND));
            delays.push(schedule.base_delay().as_secs());
        }
        assert_eq!(delays, [6, 12, 24, 48, 60, 60, 60, 60]);
        schedule.succeeded(None);
        assert_eq!(schedule.base_delay(), 60 * SECOND);
        schedule.succeeded(Some(SECOND));
        assert_eq!(
            schedule.base_delay(),
            3 * SECOND,
            "activity speeds it up again"
        );
    }

    #[test]
    fn errors_back_off_exponentially_up_to_the_cap() {
        let mut schedule = schedule();
        let mut delays = Vec::new();
        for _ in 0..10 {
            schedule.failed(None);
            delays.push(schedule.base_delay().as_secs());
        }
        assert_eq!(delays, [6, 12, 24, 48, 96, 192, 300, 300, 300, 300]);
        schedule.succeeded(Some(SECOND));
        assert_eq!(
            schedule.base_delay(),
            3 * SECOND,
            "a success ends the backoff"
        );
    }

    #[test]
    fn a_rate_limit_waits_at_least_its_retry_after() {
        let mut schedule = schedule();
        schedule.failed(Some(120 * SECOND));
        assert_eq!(schedule.base_delay(), 120 * SECOND);
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..100 {
            assert!(schedule.next_delay(&mut rng) >= 120 * SECOND);
        }
    }

    #[test]
    fn jitter_lengthens_each_wait_by_at_most_a_fifth_and_never_shortens_it() {
        let mut schedule = schedule();
        schedule.succeeded(Some(SECOND));
        let mut rng = StdRng::seed_from_u64(42);
        let delays: Vec<Duration> = (0..1000).map(|_| schedule.next_delay(&mut rng)).collect();
        let high = Duration::from_millis(3600);
        assert!(delays.iter().all(|d| *d >= 3 * SECOND && *d <= high));
        assert!(delays.iter().any(|d| *d < Duration::from_millis(3100)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(3500)));

        let mut exact = Schedule::new(&PollingConfig {
            jitter_percent: 0,
            ..PollingConfig::default()
        });
        exact.succeeded(Some(SECOND));
        assert_eq!(exact.next_delay(&mut rng), 3 * SECOND);
    }

    #[test]
    fn an_idle_login_polls_at_most_once_per_idle_interval() {
        let mut schedule = schedule();
        let mut rng = StdRng::seed_from_u64(9);
        let mut elapsed = Duration::ZERO;
        let mut polls = 0;
        while elapsed < 3600 * SECOND {
            schedule.succeeded(Some(7200 * SECOND));
            elapsed += schedule.next_delay(&mut rng);
            polls += 1;
        }
        assert!(polls <= 60, "{polls} polls in an hour");
    }
}
