//! The session states the simulator plays, as the connector reports them: each logout
//! variant, a checkpoint, the rate-limit escalation (429 or "Please wait a few minutes" at
//! any status, then `feedback_required`), a request budget's cool-down instead of retries,
//! rotated cookies, www-claim and `ig-set-*` values that the engine keeps and sends back, and
//! the one device identity every request of a login shows.

use std::sync::Arc;
use std::time::Duration;

use instagram_sim::{ClaimEcho, DeviceHeaders, Fault, SessionEnd, Settings};
use matrix_instagram::connector::auth::Credentials;
use matrix_instagram::connector::budget::{
    BucketRule, BudgetRules, CoolDownCause, CoolDownRule, RequestBudget,
};
use matrix_instagram::connector::session::ConnectorError;
use serde_json::json;

use crate::common::Fixture;

const INBOX: &str = "direct_v2/inbox/";
const SEND_TEXT: &str = "direct_v2/threads/broadcast/text/";

#[tokio::test]
async fn each_logout_variant_is_session_expired_with_its_reason() {
    for (end, detail) in [
        (
            SessionEnd::Expired,
            "message: login_required, logout_reason: 8",
        ),
        (
            SessionEnd::LoggedInElsewhere,
            "message: user_has_logged_out, logout_reason: 3",
        ),
        (
            SessionEnd::PasswordChanged,
            "message: login_required, logout_reason: 2",
        ),
    ] {
        let mut fx = Fixture::start().await;
        fx.sim.kill_sessions(fx.seed.demo.pk, end).unwrap();
        let err = fx.run_err("list_conversations", json!({})).await;
        assert_eq!(
            err,
            ConnectorError::SessionExpired {
                platform: "Instagram".into(),
                status: 403,
                detail: Some(detail.into()),
            },
            "{end:?}"
        );
        assert!(err.to_string().ends_with(&format!("; {detail})")), "{err}");
        assert!(err.needs_login());
        assert_eq!(fx.sim.request_count("GET", INBOX), 1, "not retried");
    }
}

#[tokio::test]
async fn checkpoint_is_its_own_error_and_needs_a_login() {
    let mut fx = Fixture::start().await;
    fx.sim.flag_checkpoint(fx.seed.demo.pk).unwrap();
    let err = fx.run_err("list_conversations", json!({})).await;
    assert_eq!(
        err,
        ConnectorError::CheckpointRequired {
            platform: "Instagram".into(),
            status: 400,
        }
    );
    assert!(err.needs_login());
    assert_eq!(fx.sim.request_count("GET", INBOX), 1, "not retried");
    fx.sim.clear_checkpoint(fx.seed.demo.pk).unwrap();
    fx.run("list_conversations", json!({})).await;
}

#[tokio::test]
async fn the_escalation_is_rate_limited_then_action_blocked() {
    let mut fx = Fixture::start().await;
    fx.sim.set_settings(Settings {
        session_requests_per_window: 1,
        rate_window: Duration::from_millis(500),
        strikes_for_feedback: 1,
        strikes_for_challenge: 0,
        ..Settings::default()
    });
    fx.run("list_conversations", json!({})).await;
    let limited = fx.run_err("list_conversations", json!({})).await;
    assert!(
        matches!(
            limited,
            ConnectorError::RateLimited {
                retry_after: None,
                ..
            }
        ),
        "{limited:?}"
    );
    assert!(!limited.needs_login());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let thread = fx.seed.direct_thread_id.clone();
    let blocked = fx
        .run_err("send", json!({"conversation_id": thread, "text": "hi"}))
        .await;
    assert!(
        matches!(&blocked, ConnectorError::ActionBlocked { message, .. }
            if message.contains("blocked by our security systems")),
        "{blocked:?}"
    );
    assert_eq!(fx.sim.request_count("POST", SEND_TEXT), 1, "not retried");
}

#[tokio::test]
async fn please_wait_is_rate_limited_at_any_status_with_its_retry_after() {
    let mut fx = Fixture::start().await;
    fx.sim.inject_fault(Fault {
        path_prefix: INBOX.into(),
        status: Some(200),
        times: 1,
        body: Some(
            r#"{"message":"Please wait a few minutes before you try again.","require_login":false,"status":"fail"}"#
                .into(),
        ),
        headers: vec![("Retry-After".into(), "600".into())],
        ..Fault::default()
    });
    let err = fx.run_err("list_conversations", json!({})).await;
    assert_eq!(
        err,
        ConnectorError::RateLimited {
            platform: "Instagram".into(),
            retry_after: Some(Duration::from_secs(600)),
        }
    );
    assert_eq!(
        fx.sim.request_count("GET", INBOX),
        1,
        "a wait beyond the retry budget is left to the caller"
    );
}

#[tokio::test]
async fn rotated_cookies_claim_and_routing_hint_are_kept_and_sent_back() {
    let mut fx = Fixture::start().await;
    fx.run("list_conversations", json!({})).await;
    let before = fx.creds.clone();
    let mut settings = Settings {
        rotation_period: Duration::from_millis(200),
        rotation_grace: Duration::from_millis(300),
        ..Settings::default()
    };
    fx.sim.set_settings(settings);
    tokio::time::sleep(Duration::from_millis(250)).await;
    fx.run("list_conversations", json!({})).await;
    assert_ne!(
        fx.creds.cookies["csrftoken"], before.cookies["csrftoken"],
        "the rotated csrftoken was kept from Set-Cookie"
    );
    assert_ne!(
        fx.creds.state["ig_www_claim"], before.state["ig_www_claim"],
        "the rotated claim was kept"
    );
    assert_ne!(
        fx.creds.state["ig_u_rur"], before.state["ig_u_rur"],
        "the rotated routing hint (ig-set-ig-u-rur) was kept"
    );
    assert_eq!(fx.creds.cookies["sessionid"], before.cookies["sessionid"]);
    settings.rotation_period = Duration::ZERO;
    fx.sim.set_settings(settings);
    tokio::time::sleep(Duration::from_millis(350)).await;

    fx.sim.clear_request_log();
    fx.run("list_conversations", json!({})).await;
    let thread = fx.seed.direct_thread_id.clone();
    fx.run(
        "send",
        json!({"conversation_id": thread, "text": "still here"}),
    )
    .await;
    let log = fx.sim.request_log();
    assert!(log
        .iter()
        .all(|entry| entry.www_claim == ClaimEcho::Matches));
    assert!(log.iter().all(|entry| entry.ig_u_rur == ClaimEcho::Matches));
    assert!(log
        .iter()
        .filter(|entry| entry.method == "POST")
        .all(|entry| entry.csrf_ok == Some(true)));

    let mut stale = before;
    let err = fx
        .connector
        .execute("list_conversations", json!({}), &mut stale)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::SessionExpired { status: 403, .. }),
        "a client that did not keep the claim is logged out: {err:?}"
    );
}

#[tokio::test]
async fn a_connector_with_a_budget_cools_down_instead_of_retrying() {
    let mut fx = Fixture::start().await;
    let bucket = BucketRule {
        burst: 10,
        per_minute: 600,
    };
    let budget = Arc::new(RequestBudget::new(BudgetRules {
        reads: bucket,
        writes: bucket,
        cool_down: CoolDownRule {
            base: Duration::from_millis(300),
            max: Duration::from_secs(2),
            forget_after: Duration::from_secs(60),
        },
    }));
    fx.connector = fx.connector.clone().with_budget(budget.clone());
    fx.sim.inject_fault(Fault {
        path_prefix: INBOX.into(),
        status: Some(429),
        times: 1,
        ..Fault::default()
    });
    let limited = fx.run_err("list_conversations", json!({})).await;
    assert_eq!(
        limited,
        ConnectorError::CoolingDown {
            platform: "Instagram".into(),
            remaining: Duration::from_millis(300),
            cause: CoolDownCause::RateLimited,
        }
    );
    assert_eq!(fx.sim.request_count("GET", INBOX), 1, "not retried");
    let refused = fx.run_err("list_conversations", json!({})).await;
    assert!(
        matches!(refused, ConnectorError::CoolingDown { .. }),
        "{refused:?}"
    );
    assert_eq!(fx.sim.request_count("GET", INBOX), 1, "not sent");

    while let Some(cool_down) = budget.cooling_down() {
        tokio::time::sleep(cool_down.remaining).await;
    }
    fx.run("list_conversations", json!({})).await;
    assert_eq!(fx.sim.request_count("GET", INBOX), 2);

    // Instagram's spam block on a send right after: the repeat cools down twice as long.
    fx.sim.set_settings(Settings {
        send_limit_per_minute: 1,
        ..fx.sim.settings()
    });
    let thread = fx.seed.direct_thread_id.clone();
    fx.run("send", json!({"conversation_id": thread, "text": "one"}))
        .await;
    let blocked = fx
        .run_err("send", json!({"conversation_id": thread, "text": "two"}))
        .await;
    assert_eq!(
        blocked,
        ConnectorError::CoolingDown {
            platform: "Instagram".into(),
            remaining: Duration::from_millis(600),
            cause: CoolDownCause::ActionBlocked,
        }
    );
    assert_eq!(fx.sim.request_count("POST", SEND_TEXT), 2, "not retried");
    assert!(!blocked.needs_login());
}

#[tokio::test]
async fn every_request_of_a_login_shows_its_one_device_also_after_a_new_login() {
    let mut fx = Fixture::start().await;
    let device = fx.creds.device();
    fx.run("list_conversations", json!({})).await;
    fx.run("list_pending", json!({})).await;
    fx.run("current_user", json!({})).await;
    // Logging in again: a new session, the login's device identity kept.
    let pk = fx.seed.demo.pk;
    fx.creds = Credentials::with_device(fx.sim.new_session(pk).unwrap(), device.clone());
    fx.run("list_conversations", json!({})).await;

    let expected = DeviceHeaders {
        device_id: Some(device.uuid.clone()),
        family_device_id: Some(device.phone_id.clone()),
        android_id: Some(device.android_id.clone()),
        user_agent: Some(format!(
            "Instagram 275.0.0.27.98 Android ({}; en_US; 458229258)",
            device.user_agent
        )),
    };
    let log = fx.sim.request_log();
    assert!(log.len() >= 4, "{log:#?}");
    for entry in &log {
        assert_eq!(entry.device, expected, "{} {}", entry.method, entry.path);
    }
    assert!(device.android_id.starts_with("android-"));
    assert_ne!(device.uuid, device.phone_id);

    // The first session shown from another phone is challenged, as Instagram does.
    fx.creds = Credentials::new(fx.seed.demo.cookies.clone());
    let err = fx.run_err("list_conversations", json!({})).await;
    assert_eq!(
        err,
        ConnectorError::ChallengeRequired {
            platform: "Instagram".into(),
            status: 400,
        }
    );
}
