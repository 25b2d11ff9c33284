//! Account safety on the bridge's side: one request budget per login (from `safety:` in
//! the config), the connector every piece of work for a login goes through
//! ([`Bridge::login_connector`]), and the login's `rate_limited` state for a series of
//! cool-downs: entered (its owner told once, with until when requests are paused) at the
//! first, left when the series is over. A cool-down is kept in the database too, so a
//! restart of the bridge takes it up instead of asking Instagram again at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::SafetyConfig;
use crate::connector::budget::{
    BucketRule, BudgetRules, CoolDown, CoolDownCause, CoolDownRule, RequestBudget,
};
use crate::connector::http::Connector;

use super::login_state::{move_login, LoginState};
use super::Bridge;

/// The logins' request budgets, by login id; made when first asked for
/// and kept for the life of the process (their cool-downs also in the
/// database: [`restore_cool_downs`]).
pub struct LoginBudgets {
    rules: BudgetRules,
    budgets: Mutex<HashMap<String, Arc<RequestBudget>>>,
}

impl LoginBudgets {
    pub fn new(config: &SafetyConfig) -> LoginBudgets {
        LoginBudgets {
            rules: rules(config),
            budgets: Mutex::default(),
        }
    }

    /// The budget of the login `login_id`.
    pub fn of(&self, login_id: &str) -> Arc<RequestBudget> {
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        budgets
            .entry(login_id.to_owned())
            .or_insert_with(|| Arc::new(RequestBudget::new(self.rules)))
            .clone()
    }
}

/// The budget rules `safety:` describes.
pub fn rules(config: &SafetyConfig) -> BudgetRules {
    BudgetRules {
        reads: BucketRule {
            burst: config.reads_burst,
            per_minute: config.reads_per_minute,
        },
        writes: BucketRule {
            burst: config.writes_burst,
            per_minute: config.writes_per_minute,
        },
        cool_down: CoolDownRule {
            base: Duration::from_millis(config.cool_down_ms),
            max: Duration::from_millis(config.max_cool_down_ms),
            forget_after: Duration::from_millis(config.forget_after_ms),
        },
    }
}

impl Bridge {
    /// The connector for work done for the login of `login_id`: every request goes
    /// through that login's budget.
    pub fn login_connector(&self, login_id: &str) -> Connector {
        self.connector
            .clone()
            .with_budget(self.budgets.of(login_id))
    }
}

/// When a pause of `remaining` from now ends, rounded up to the minute (the
/// pause is over by the time named).
pub fn pause_end(remaining: Duration) -> DateTime<Utc> {
    let end = chrono::Duration::from_std(remaining)
        .ok()
        .and_then(|remaining| Utc::now().checked_add_signed(remaining))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let minute = end.timestamp().div_euclid(60) + i64::from(end.timestamp().rem_euclid(60) != 0);
    DateTime::from_timestamp(minute * 60, 0).unwrap_or(end)
}

/// [`pause_end`] as the user reads it: `14:05 UTC`.
pub fn paused_until(remaining: Duration) -> String {
    pause_end(remaining).format("%H:%M UTC").to_string()
}

/// What Instagram did, in plain words.
pub fn cause_words(cause: CoolDownCause) -> &'static str {
    match cause {
        CoolDownCause::RateLimited => {
            "Instagram asked your account to slow down (too many requests)"
        }
        CoolDownCause::ActionBlocked => {
            "Instagram blocked sending from your account for a while (its spam protection, \
             feedback_required)"
        }
    }
}

/// Where a login's cool-down is kept between runs of the bridge.
const COOL_DOWN_KEY: &str = "cool_down:";

/// A cool-down as kept in the database: when it ends (Unix milliseconds),
/// why, and its place in its series.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct KeptCoolDown {
    until_ms: i64,
    action_blocked: bool,
    repeat: u32,
}

/// The login of `login_id` met a cool-down: it is kept in the database
/// (a restart takes it up); the first time in a series of cool-downs, the
/// login is moved to `rate_limited` (its owner told once, with the time the
/// pause ends); repeats of the series change nothing else.
pub async fn tell_cool_down(bridge: &Bridge, login_id: &str) {
    let budget = bridge.budgets.of(login_id);
    if let Some(cool_down) = budget.cooling_down() {
        keep_cool_down(bridge, login_id, &cool_down).await;
    }
    let Some(cool_down) = budget.take_unreported() else {
        return;
    };
    tracing::warn!(
        login = login_id,
        cause = ?cool_down.cause,
        remaining_s = cool_down.remaining.as_secs(),
        "Instagram asked to slow down; the login's requests are paused"
    );
    move_login(
        bridge,
        login_id,
        LoginState::RateLimited,
        Some(pause_end(cool_down.remaining)),
    )
    .await;
}

/// After a good poll: once a series of cool-downs is over (its repeats
/// forgotten), the login is moved back to `connected`, its owner told.
pub async fn tell_recovered(bridge: &Bridge, login_id: &str) {
    if bridge.budgets.of(login_id).take_recovered() {
        if let Err(e) = bridge
            .store
            .kv_delete(&format!("{COOL_DOWN_KEY}{login_id}"))
            .await
        {
            tracing::warn!(login = login_id, error = %e, "cannot forget a cool-down that is over");
        }
        move_login(bridge, login_id, LoginState::Connected, None).await;
    }
}

async fn keep_cool_down(bridge: &Bridge, login_id: &str, cool_down: &CoolDown) {
    let until = Utc::now()
        + chrono::Duration::from_std(cool_down.remaining).unwrap_or(chrono::Duration::MAX);
    let kept = KeptCoolDown {
        until_ms: until.timestamp_millis(),
        action_blocked: cool_down.cause == CoolDownCause::ActionBlocked,
        repeat: cool_down.repeat,
    };
    let value = serde_json::to_string(&kept).unwrap_or_default();
    if let Err(e) = bridge
        .store
        .kv_set(&format!("{COOL_DOWN_KEY}{login_id}"), &value)
        .await
    {
        tracing::warn!(login = login_id, error = %e, "cannot keep a cool-down for a restart");
    }
}

/// At startup: the cool-downs an earlier run was in and that are not over
/// are taken up by the logins' budgets, so nothing goes to Instagram before
/// the pause it asked for ends.
pub async fn restore_cool_downs(bridge: &Bridge) {
    let kept = match bridge.store.kv_with_prefix(COOL_DOWN_KEY).await {
        Ok(kept) => kept,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the cool-downs of the last run");
            return;
        }
    };
    let now = Utc::now().timestamp_millis();
    for (key, value) in kept {
        let login_id = &key[COOL_DOWN_KEY.len()..];
        let Ok(cool_down) = serde_json::from_str::<KeptCoolDown>(&value) else {
            tracing::warn!(login = login_id, "an unreadable kept cool-down is ignored");
            continue;
        };
        let Ok(remaining) = u64::try_from(cool_down.until_ms - now) else {
            continue;
        };
        let cause = if cool_down.action_blocked {
            CoolDownCause::ActionBlocked
        } else {
            CoolDownCause::RateLimited
        };
        tracing::info!(
            login = login_id,
            remaining_s = remaining / 1000,
            "the last run's cool-down goes on"
        );
        bridge.budgets.of(login_id).resume_cool_down(
            Duration::from_millis(remaining),
            cause,
            cool_down.repeat,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_stay_below_what_instagram_flags() {
        let rules = rules(&SafetyConfig::default());
        assert!(
            rules.writes.per_minute < 30,
            "Instagram flags 30 sends a minute"
        );
        assert!(rules.writes.burst <= 5);
        assert!(
            rules.reads.per_minute >= 20 + 20,
            "a poll every 3 s and a page for each chat it finds changed"
        );
        assert!(rules.cool_down.base >= Duration::from_secs(60));
    }

    #[test]
    fn a_pause_ends_on_a_whole_minute_after_it_is_over() {
        let remaining = Duration::from_secs(90);
        let end = pause_end(remaining);
        assert_eq!(end.timestamp() % 60, 0);
        let shortest = Utc::now() + chrono::Duration::seconds(90);
        assert!(
            end >= shortest - chrono::Duration::seconds(1),
            "{end} {shortest}"
        );
        assert!(
            end < shortest + chrono::Duration::seconds(61),
            "{end} {shortest}"
        );
        assert_eq!(
            paused_until(remaining).len(),
            "14:05 UTC".len(),
            "{}",
            paused_until(remaining)
        );
    }
}
