//! A small Instagram API client for the simulator's tests: sends the session cookies,
//! `X-CSRFTOKEN` on POSTs, and echoes `x-ig-set-www-claim` back as `X-IG-WWW-Claim`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;

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
        let mut request = request.header("Cookie", self.cookie_header());
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
