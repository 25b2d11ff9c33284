//! A small Instagram API client for the simulator's tests: sends the app's User-Agent and
//! `X-IG-App-ID`, the session cookies, `X-CSRFTOKEN` on POSTs, and echoes
//! `x-ig-set-www-claim` back as `X-IG-WWW-Claim`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;

/// The Android app's User-Agent (the private API refuses any other).
pub const APP_USER_AGENT: &str = "Instagram 275.0.0.27.98 Android (33/13; 420dpi; 1080x2400; Google/google; Pixel 7; panther; tensor; en_US; 458229258)";
pub const APP_ID: &str = "567067343352427";

/// A broadcast's form as the app sends it: `fields` plus `action=send_item`, `_uuid` and
/// `client_context` repeated as `mutation_token` and `offline_threading_id` (fields given
/// in `fields` win).
pub fn send_form<'a>(
    fields: &[(&'a str, &'a str)],
    client_context: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut form = fields.to_vec();
    for (name, value) in [
        ("action", "send_item"),
        ("_uuid", "3f1c1a2e-0000-4000-8000-000000000001"),
        ("client_context", client_context),
        ("mutation_token", client_context),
        ("offline_threading_id", client_context),
    ] {
        if !form.iter().any(|(given, _)| *given == name) {
            form.push((name, value));
        }
    }
    form
}

/// A plain HTTP client that identifies as the app (User-Agent and `X-IG-App-ID` on every
/// request), for tests that build requests themselves.
pub fn app_http() -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert("user-agent", APP_USER_AGENT.parse().unwrap());
    headers.insert("x-ig-app-id", APP_ID.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

pub struct ApiClient {
    http: reqwest::Client,
    api_base: String,
    cookies: BTreeMap<String, String>,
    claim: Mutex<Option<String>>,
}

pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl ApiResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("response is not JSON ({error}): {}", self.text))
    }
}

impl ApiClient {
    pub fn new(api_base: String, cookies: BTreeMap<String, String>) -> ApiClient {
        ApiClient {
            http: reqwest::Client::new(),
            api_base,
            cookies,
            claim: Mutex::new(None),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> ApiResponse {
        let mut request = request
            .header("User-Agent", APP_USER_AGENT)
            .header("X-IG-App-ID", APP_ID)
            .header("Cookie", self.cookie_header());
        let claim = self.claim.lock().unwrap().clone();
        if let Some(claim) = claim {
            request = request.header("X-IG-WWW-Claim", claim);
        }
        let response = request.send().await.expect("request reaches the simulator");
        if let Some(claim) = response.headers().get("x-ig-set-www-claim") {
            *self.claim.lock().unwrap() = Some(claim.to_str().unwrap().to_owned());
        }
        ApiResponse {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.expect("response body"),
        }
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> ApiResponse {
        let url = format!("{}/{}", self.api_base, path);
        self.send(self.http.get(url).query(query)).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> ApiResponse {
        let url = format!("{}/{}", self.api_base, path);
        let csrftoken = self.cookies.get("csrftoken").cloned().unwrap_or_default();
        self.send(
            self.http
                .post(url)
                .header("X-CSRFTOKEN", csrftoken)
                .form(form),
        )
        .await
    }

    /// A GET whose answer must be 200; returns the JSON body.
    pub async fn get_ok(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let response = self.get(path, query).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "GET {path}: {}",
            response.text
        );
        response.json()
    }

    /// A POST whose answer must be 200 with status ok; returns the JSON body.
    pub async fn post_ok(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let response = self.post(path, form).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "POST {path}: {}",
            response.text
        );
        let body = response.json();
        assert_eq!(body["status"], "ok", "POST {path}: {body}");
        body
    }
}
