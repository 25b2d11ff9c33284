//! Figures of the relay benchmark: percentiles of latencies and the idle
//! and busy logins' request rates, with how they were measured.

use std::fmt;
use std::time::Duration;

/// p50 and p99 (nearest rank) of microsecond samples.
pub struct Percentiles {
    pub p50: u64,
    pub p99: u64,
}

impl Percentiles {
    pub fn of(samples: impl Iterator<Item = u64>) -> Percentiles {
        let mut sorted: Vec<u64> = samples.collect();
        sorted.sort_unstable();
        let rank = |p: f64| {
            if sorted.is_empty() {
                return 0;
            }
            let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index]
        };
        Percentiles {
            p50: rank(0.50),
            p99: rank(0.99),
        }
    }
}

/// Microseconds as milliseconds with one decimal.
pub fn ms(micros: u64) -> String {
    format!("{:.1} ms", micros as f64 / 1000.0)
}

/// A difference of microseconds, in milliseconds.
pub fn ms_signed(micros: i64) -> String {
    format!("{:.1} ms", micros as f64 / 1000.0)
}

/// One login's Instagram requests over whole poll intervals.
pub struct LoginRequests {
    /// Requests from the first observed poll up to (not including) the last one.
    pub requests: usize,
    /// Per path, same window.
    pub by_path: Vec<(String, usize)>,
    /// From the first observed poll to the last one.
    pub span: Duration,
    pub polls: usize,
    /// Whether the login was in the regime measured (the idle one had been
    /// quiet long enough to poll at the idle interval).
    pub regime: bool,
}

impl LoginRequests {
    pub fn per_hour(&self) -> f64 {
        if self.span.is_zero() {
            return 0.0;
        }
        self.requests as f64 * 3600.0 / self.span.as_secs_f64()
    }

    fn detail(&self) -> String {
        let paths = self
            .by_path
            .iter()
            .map(|(path, count)| format!("{path} x{count}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{} requests over {} poll intervals ({:.1} s, first poll to last poll): {paths}",
            self.requests,
            self.polls.saturating_sub(1),
            self.span.as_secs_f64(),
        )
    }
}

/// The Instagram requests of an idle and a busy login, default settings.
pub struct RequestRates {
    pub idle: LoginRequests,
    pub busy: LoginRequests,
}

impl fmt::Display for RequestRates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Instagram requests per hour: idle {:.0}, busy {:.0} (default settings)\n  \
             measured: the simulator's request log, both logins observed over the same window, \
             scaled to an hour\n  \
             idle (a second login, its chats quiet for longer than the active window): {}\n  \
             busy (alice, one of her chats getting a message every few seconds): {}",
            self.idle.per_hour(),
            self.busy.per_hour(),
            self.idle.detail(),
            self.busy.detail(),
        )?;
        if !self.idle.regime {
            write!(
                f,
                "\n  (quick run: the idle login had not reached its idle interval yet, so its \
                 figure only shows that the measurement works)"
            )?;
        }
        Ok(())
    }
}
