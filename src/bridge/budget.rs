//! Account safety on the bridge's side: one request budget per login (from `safety:` in
//! the config), the connector every piece of work for a login goes through
//! ([`Bridge::login_connector`]), and the one notice per series of cool-downs telling the
//! user that Instagram asked the account to slow down and until when requests are paused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::SafetyConfig;
use crate::connector::budget::{
    BucketRule, BudgetRules, CoolDownCause, CoolDownRule, RequestBudget,
};
use crate::connector::http::Connector;

use super::Bridge;

/// The logins' request budgets, by the login's Matrix user id; made when first asked for
/// and kept for the life of the process (a restart forgets cool-downs: Instagram's answer
/// to the next request starts one again).
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

    /// The budget of the login of `login_mxid`.
    pub fn of(&self, login_mxid: &str) -> Arc<RequestBudget> {
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        budgets
            .entry(login_mxid.to_owned())
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
    /// The connector for work done for the login of `login_mxid`: every request goes
    /// through that login's budget.
    pub fn login_connector(&self, login_mxid: &str) -> Connector {
        self.connector
            .clone()
            .with_budget(self.budgets.of(login_mxid))
    }
}

/// When a pause of `remaining` from now ends, as the user reads it: `14:05 UTC`.
pub fn paused_until(remaining: Duration) -> String {
    let now = Utc::now();
    let end = chrono::Duration::from_std(remaining)
        .ok()
        .and_then(|remaining| now.checked_add_signed(remaining))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    // Rounded up to the minute: the pause is over by the time named.
    let minute = end.timestamp().div_euclid(60) + i64::from(end.timestamp() % 60 != 0);
    DateTime::from_timestamp(minute * 60, 0)
        .unwrap_or(end)
        .format("%H:%M UTC")
        .to_string()
}

/// What Instagram did, in plain words.
pub fn cause_words(cause: CoolDownCause) -> &'static str {
    match cause {
        CoolDownCause::RateLimited => "Instagram asked your account to slow down (too many requests)",
        CoolDownCause::ActionBlocked => {
            "Instagram blocked sending from your account for a while (its spam protection, \
             feedback_required)"
        }
    }
}

/// The notice of a cool-down that ends at `until`.
fn notice_text(cause: CoolDownCause, until: &str) -> String {
    format!(
        "{}, so the bridge has paused everything it does on Instagram for this login until \
         {}. Nothing is lost: your messages wait and go out in order after that. If Instagram \
         still refuses then, the pause grows; you will not be told again.",
        cause_words(cause),
        until
    )
}

/// Tells the owner of the login of `login_mxid` in their management room that its
/// requests are paused, once per series of cool-downs (whoever meets the cool-down first
/// tells; the rest find it told).
pub async fn tell_cool_down(bridge: &Bridge, login_mxid: &str) {
    let Some(cool_down) = bridge.budgets.of(login_mxid).take_unreported() else {
        return;
    };
    tracing::warn!(
        login = login_mxid,
        cause = ?cool_down.cause,
        remaining_s = cool_down.remaining.as_secs(),
        "Instagram asked to slow down; the login's requests are paused"
    );
    if let Err(e) =
        super::poller::notify(bridge, login_mxid, "cool-down", &notice_text(cool_down.cause, &paused_until(cool_down.remaining))).await
    {
        tracing::warn!(login = login_mxid, error = %e, "cannot tell the user about the pause");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_stay_below_what_instagram_flags() {
        let rules = rules(&SafetyConfig::default());
        assert!(rules.writes.per_minute < 30, "Instagram flags 30 sends a minute");
        assert!(rules.writes.burst <= 5);
        assert!(
            rules.reads.per_minute >= 20 + 20,
            "a poll every 3 s and a page for each chat it finds changed"
        );
        assert!(rules.cool_down.base >= Duration::from_secs(60));
    }

    #[test]
    fn the_notice_says_what_happened_and_until_when() {
        let text = notice_text(CoolDownCause::ActionBlocked, "14:05 UTC");
        assert!(text.starts_with("Instagram blocked sending"), "{text}");
        assert!(text.contains("until 14:05 UTC. Nothing is lost"), "{text}");
        let until = paused_until(Duration::from_secs(300));
        assert!(
            until.ends_with(" UTC") && until.len() == "14:05 UTC".len(),
            "{until}"
        );
    }
}
