//! Figures of the relay benchmark: percentiles of latencies and the idle
//! login's request rate, with how it was measured.

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

/// The idle login's Instagram requests over whole poll intervals.
pub struct IdleReport {
    /// Requests from the first observed poll up to (not including) the last one.
    pub requests: usize,
    /// Per path, same window.
    pub by_path: Vec<(String, usize)>,
    /// From the first observed poll to the last one.
    pub span: Duration,
    pub polls: usize,
    /// Whether the login had been quiet long enough to poll at the idle interval.
    pub idle_regime: bool,
    pub observed: Duration,
}

impl IdleReport {
    pub fn per_hour(&self) -> f64 {
        if self.span.is_zero() {
            return 0.0;
        }
        self.requests as f64 * 3600.0 / self.span.as_secs_f64()
    }
}

impl fmt::Display for IdleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths = self
            .by_path
            .iter()
            .map(|(path, count)| format!("{path} x{count}"))
            .collect::<Vec<_>>()
            .join(", ");
        write!(
            f,
            "Instagram requests per idle login per hour (default intervals): {:.0}\n  \
             measured: the simulator's request log for a second login (its chats quiet for \
             longer than the active window), observed for {:.0} s; {} requests over {} poll \
             intervals ({:.1} s, first poll to last poll), scaled to an hour: {paths}",
            self.per_hour(),
            self.observed.as_secs_f64(),
            self.requests,
            self.polls.saturating_sub(1),
            self.span.as_secs_f64(),
        )?;
        if !self.idle_regime {
            write!(
                f,
                "\n  (quick run: the login had not reached its idle interval yet, so this \
                 figure only shows that the measurement works)"
            )?;
        }
        Ok(())
    }
}
