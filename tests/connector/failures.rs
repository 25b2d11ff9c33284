//! Failure paths: expired sessions, challenges, rate limits, server errors,
//! malformed bodies and timeouts, the retry policy around them, CSRF and the
//! www-claim round trip, and that no secret reaches an error or Debug output.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use instagram_sim::{ClaimEcho, Fault};
use matrix_instagram::connector::http::{BaseUrls, Connector};
use matrix_instagram::connector::session::ConnectorError;
use matrix_instagram::connector::spec::Spec;
use serde_json::json;

use crate::common::Fixture;

const INBOX: &str = "direct_v2/inbox/";

fn fault(path_prefix: &str, status: Option<u16>, times: usize) -> Fault {
    Fault {
        path_prefix: path_prefix.into(),
        status,
        times,
        ..Fault::default()
    }
}

#[tokio::test]
async fn expired_session_is_not_retried() {
    let mut fx = Fixture::start().await;
    fx.sim.expire_session(fx.seed.demo.pk).unwrap();
    let err = fx.run_err("list_conversations", json!({})).await;
    assert!(
        matches!(err, ConnectorError::SessionExpired { status: 403, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "Instagram asks you to log in again (the session has expired or was logged out; \
         message: login_required, logout_reason: 8)"
    );
    assert!(err.needs_login());
    assert_eq!(fx.sim.request_count("GET", INBOX), 1);
}

#[tokio::test]
async fn challenge_is_reported_and_not_retried() {
    let mut fx = Fixture::start().await;
    fx.sim.flag_challenge(fx.seed.demo.pk).unwrap();
    let thread = fx.seed.direct_thread_id.clone();
    let err = fx
        .run_err("send", json!({"conversation_id": thread, "text": "hi"}))
        .await;
    assert!(
        matches!(err, ConnectorError::ChallengeRequired { status: 400, .. }),
        "{err:?}"
    );
    assert_eq!(
        fx.sim
            .request_count("POST", "direct_v2/threads/broadcast/text/"),
        1
    );
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_succeeds() {
    let mut fx = Fixture::start().await;
    fx.sim.inject_fault(Fault {
        body: Some(
            r#"{"message":"Please wait a few minutes before you try again.","status":"fail"}"#
                .into(),
        ),
        headers: vec![("Retry-After".into(), "1".into())],
        ..fault(INBOX, Some(429), 1)
    });
    let started = Instant::now();
    let result = fx.run("list_conversations", json!({})).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert!(!result.as_array().unwrap().is_empty());
    assert_eq!(fx.sim.request_count("GET", INBOX), 2);
}

#[tokio::test]
async fn real_rate_limit_gives_up_within_the_bound() {
    let mut fx = Fixture::start().await;
    fx.sim.set_rate_limit(1, Duration::from_secs(60));
    fx.run("current_user", json!({})).await;
    let err = fx.run_err("list_conversations", json!({})).await;
    assert!(matches!(err, ConnectorError::RateLimited { .. }), "{err:?}");
    assert_eq!(
        fx.sim.request_count("GET", INBOX),
        3,
        "max_attempts of the test policy"
    );
}

#[tokio::test]
async fn server_error_then_success_is_retried() {
    let mut fx = Fixture::start().await;
    fx.sim.inject_fault(fault(INBOX, Some(500), 1));
    let result = fx.run("list_conversations", json!({})).await;
    assert!(!result.as_array().unwrap().is_empty());
    assert_eq!(fx.sim.request_count("GET", INBOX), 2);
}

#[tokio::test]
async fn server_error_on_a_write_is_not_repeated() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    fx.sim
        .inject_fault(fault("direct_v2/threads/", Some(500), 1));
    let err = fx.run_err("mute", json!({"conversation_id": thread})).await;
    assert!(matches!(err, ConnectorError::Transient { .. }), "{err:?}");
    assert_eq!(
        fx.sim
            .request_count("POST", &format!("direct_v2/threads/{thread}/mute/")),
        1
    );
}

/// The texts of the thread's items, newest first.
fn thread_texts(fx: &Fixture, thread: &str) -> Vec<String> {
    fx.sim.thread_snapshot(thread).unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_send_whose_answer_is_lost_after_the_write_is_not_repeated() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    let path = "direct_v2/threads/broadcast/text/";
    // Write, then 500; write, then drop the connection: either way the item is there,
    // and the engine must not send it again (Instagram does not promise to dedupe).
    for (text, fault) in [
        (
            "written then 500",
            Fault {
                after_write: true,
                ..fault(path, Some(500), 1)
            },
        ),
        (
            "written then dropped",
            Fault {
                after_write: true,
                drop_connection: true,
                ..fault(path, None, 1)
            },
        ),
    ] {
        fx.sim.clear_request_log();
        fx.sim.inject_fault(fault);
        let err = fx
            .run_err(
                "send",
                json!({"conversation_id": thread, "text": text, "client_context": "6800012345678901234"}),
            )
            .await;
        assert!(matches!(err, ConnectorError::Transient { .. }), "{err:?}");
        assert_eq!(
            fx.sim.request_count("POST", path),
            1,
            "{text}: not repeated"
        );
        let texts = thread_texts(&fx, &thread);
        assert_eq!(
            texts.iter().filter(|seen| *seen == text).count(),
            1,
            "{texts:?}"
        );
        assert_eq!(texts[0], text);
    }
}

#[tokio::test]
async fn malformed_json_is_reported() {
    let mut fx = Fixture::start().await;
    fx.sim.inject_fault(Fault {
        malformed_body: true,
        ..fault(INBOX, None, 1)
    });
    let err = fx.run_err("list_conversations", json!({})).await;
    match &err {
        ConnectorError::MalformedResponse { action, message } => {
            assert_eq!(action, "list_conversations");
            assert!(
                message.starts_with("HTTP 200 with a body that is not JSON"),
                "{message}"
            );
        }
        other => panic!("expected MalformedResponse, got {other:?}"),
    }
    assert_eq!(fx.sim.request_count("GET", INBOX), 1);
}

#[tokio::test]
async fn timeout_is_transient_after_bounded_retries() {
    let mut fx = Fixture::start().await;
    fx.connector = fx
        .connector
        .clone()
        .with_timeout(Duration::from_millis(300));
    fx.sim.inject_fault(Fault {
        delay: Duration::from_secs(2),
        ..fault(INBOX, None, 10)
    });
    let started = Instant::now();
    let err = fx.run_err("list_conversations", json!({})).await;
    assert_eq!(
        err,
        ConnectorError::Transient {
            platform: "Instagram".into(),
            message: "no answer within 300 ms".into(),
        }
    );
    // Two attempts and a backoff take 650 ms; three take at least 900 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_silent_server_gets_exactly_max_attempts() {
    let fx = Fixture::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let connector = connector_at(&fx, &silent).with_timeout(Duration::from_millis(200));
    let mut creds = fx.creds.clone();
    let err = connector
        .execute("list_conversations", json!({}), &mut creds)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Transient { .. }), "{err:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "one connection per attempt"
    );

    // A write is not repeated after a timeout: it may have happened.
    accepted.store(0, Ordering::SeqCst);
    let err = connector
        .execute(
            "mute",
            json!({"conversation_id": fx.seed.direct_thread_id}),
            &mut creds,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Transient { .. }), "{err:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // Nor is a send, client_context or not (Instagram does not promise to dedupe on it),
    accepted.store(0, Ordering::SeqCst);
    let send = json!({"conversation_id": fx.seed.direct_thread_id, "text": "hi"});
    connector
        .execute("send", send, &mut creds)
        .await
        .unwrap_err();
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // nor create_group, marked `idempotent: false`.
    accepted.store(0, Ordering::SeqCst);
    let group = json!({"user_ids": ["1", "2"]});
    connector
        .execute("create_group", group, &mut creds)
        .await
        .unwrap_err();
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// The demo connector's spec and retry policy, aimed at another API URL.
fn connector_at(fx: &Fixture, api_base_url: &str) -> Connector {
    let spec = fx.connector.spec().clone();
    let base_urls = BaseUrls::with_overrides(&spec.api, Some(api_base_url), None, None);
    Connector::new(spec, base_urls).with_retry_policy(crate::common::fast_retries())
}

#[tokio::test]
async fn unreachable_platform_is_transient() {
    let mut fx = Fixture::start().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}/api/v1", listener.local_addr().unwrap());
    drop(listener);
    let err = connector_at(&fx, &closed)
        .execute("list_conversations", json!({}), &mut fx.creds)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Transient { message, .. } if message == "could not connect"),
        "{err:?}"
    );
}

#[tokio::test]
async fn csrf_header_matches_the_cookie_and_a_mismatch_is_refused() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    fx.run("mute", json!({"conversation_id": thread})).await;
    let posts: Vec<_> = fx
        .sim
        .request_log()
        .into_iter()
        .filter(|entry| entry.method == "POST")
        .collect();
    assert!(!posts.is_empty());
    assert!(posts.iter().all(|entry| entry.csrf_ok == Some(true)));

    // A spec that forgets the header: Instagram refuses the POST, and the
    // refusal is a platform error, not an expired session.
    let text = std::fs::read_to_string(crate::common::spec_path()).unwrap();
    let without_header = text.replace("    X-CSRFTOKEN: \"{{auth.cookies.csrftoken}}\"\n", "");
    assert_ne!(without_header, text);
    let spec = Spec::parse("no-csrf.yaml", &without_header).unwrap();
    let base_urls = BaseUrls::with_overrides(&spec.api, Some(&fx.sim.api_base_url()), None, None);
    let connector =
        Connector::new(spec, base_urls).with_retry_policy(crate::common::fast_retries());
    let err = connector
        .execute("unmute", json!({"conversation_id": thread}), &mut fx.creds)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Platform { status: 403, message, .. } if message == "CSRF token missing or incorrect"),
        "{err:?}"
    );
    assert_eq!(fx.sim.request_log().last().unwrap().csrf_ok, Some(false));
}

#[tokio::test]
async fn www_claim_from_a_response_is_sent_on_the_next_request() {
    let mut fx = Fixture::start().await;
    assert!(!fx.creds.state.contains_key("ig_www_claim"));
    fx.run("current_user", json!({})).await;
    assert!(
        fx.creds.state.contains_key("ig_www_claim"),
        "the hook stored the claim"
    );
    fx.run("list_conversations", json!({})).await;
    let log = fx.sim.request_log();
    assert_eq!(log.len(), 2);
    assert_eq!(
        log[0].www_claim,
        ClaimEcho::Differs,
        "the first request sends the default 0"
    );
    assert_eq!(log[1].www_claim, ClaimEcho::Matches);
}

#[tokio::test]
async fn no_cookie_value_reaches_errors_or_debug_output() {
    let mut fx = Fixture::start().await;
    let secrets: Vec<String> = fx.creds.cookies.values().cloned().collect();
    let mut shown = vec![format!("{:?}", fx.creds), format!("{:?}", fx.connector)];

    let thread = fx.seed.direct_thread_id.clone();
    fx.sim.inject_fault(fault(INBOX, Some(500), 10));
    for action in ["list_conversations"] {
        let err = fx.run_err(action, json!({})).await;
        shown.push(err.to_string());
        shown.push(format!("{err:?}"));
    }
    fx.sim.clear_faults();
    fx.sim.expire_session(fx.seed.demo.pk).unwrap();
    let err = fx
        .run_err("send", json!({"conversation_id": thread, "text": "x"}))
        .await;
    shown.push(err.to_string());
    shown.push(format!("{err:?}"));
    shown.push(format!("{:?}", fx.creds));

    fx.creds.cookies.remove("mid");
    let err = fx.run_err("list_conversations", json!({})).await;
    assert_eq!(
        err.to_string(),
        "the saved login is incomplete (missing required cookie(s): mid); log in again"
    );
    shown.push(format!("{err:?}"));

    for text in &shown {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a cookie value leaked into: {text}"
            );
        }
    }
}

#[tokio::test]
async fn an_unknown_action_is_named() {
    let mut fx = Fixture::start().await;
    let err = fx.run_err("send_carrier_pigeon", json!({})).await;
    assert_eq!(
        err.to_string(),
        "no action named `send_carrier_pigeon` in the connector spec"
    );
    assert!(fx.sim.request_log().is_empty());
}
