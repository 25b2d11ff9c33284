//! Shared setup: a simulator with the demo seed, the real spec pointed at it,
//! and the demo account's credentials.

use std::path::PathBuf;
use std::time::Duration;

use instagram_sim::{DemoSeed, Simulator};
use matrix_instagram::connector::auth::Credentials;
use matrix_instagram::connector::http::{BaseUrls, Connector};
use matrix_instagram::connector::session::{ConnectorError, RetryPolicy};
use matrix_instagram::connector::spec::Spec;

pub fn spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("connectors/instagram.yaml")
}

pub fn load_spec() -> Spec {
    Spec::load(&spec_path()).unwrap_or_else(|err| panic!("the real spec loads:\n{err}"))
}

/// Short waits so retry tests stay fast while still exercising backoff.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        max_total_wait: Duration::from_secs(5),
    }
}

pub struct Fixture {
    pub sim: Simulator,
    pub seed: DemoSeed,
    pub connector: Connector,
    pub creds: Credentials,
}

impl Fixture {
    pub async fn start() -> Fixture {
        let sim = Simulator::start().await;
        let seed = sim.seed_demo().expect("demo seed");
        let spec = load_spec();
        let base_urls = BaseUrls::with_overrides(&spec.api, Some(&sim.api_base_url()), None, None);
        let connector = Connector::new(spec, base_urls)
            .with_retry_policy(fast_retries())
            .with_timeout(Duration::from_secs(5));
        let creds = Credentials::from_cookies(seed.demo.cookies.clone());
        Fixture {
            sim,
            seed,
            connector,
            creds,
        }
    }

    /// Runs an action and returns its normalized result, failing the test on error.
    pub async fn run(&mut self, action: &str, params: serde_json::Value) -> serde_json::Value {
        match self
            .connector
            .execute(action, params, &mut self.creds)
            .await
        {
            Ok(output) => output.normalized,
            Err(err) => panic!("{action} failed: {err}"),
        }
    }

    /// Runs an action that must fail and returns its error.
    pub async fn run_err(&mut self, action: &str, params: serde_json::Value) -> ConnectorError {
        match self
            .connector
            .execute(action, params, &mut self.creds)
            .await
        {
            Ok(output) => panic!("{action} succeeded: {:?}", output.normalized),
            Err(err) => err,
        }
    }
}
