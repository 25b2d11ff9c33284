//! Signed media URLs, as Instagram's CDN hands them out: `oh=` is a signature over the file
//! and the other parameters, `oe=` the expiry (Unix seconds in hex). A URL answers 403 once
//! expired or when any part was changed; fetching the item again gives a fresh URL.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::Value;

/// Why `/media/` refused a URL (the CDN's own texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlRefusal {
    Expired,
    BadSignature,
}

impl UrlRefusal {
    pub fn text(self) -> &'static str {
        match self {
            UrlRefusal::Expired => "URL signature expired",
            UrlRefusal::BadSignature => "Bad URL hash",
        }
    }
}

fn signature(secret: u64, name: &str, params: &[(String, String)], oe: &str) -> String {
    let mut hasher = DefaultHasher::new();
    secret.hash(&mut hasher);
    name.hash(&mut hasher);
    params.hash(&mut hasher);
    oe.hash(&mut hasher);
    format!("00_{:016x}", hasher.finish())
}

/// The query parameters other than `oh`/`oe`, sorted (the signed part).
fn signed_params(query: &str) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    params.retain(|(name, _)| name != "oh" && name != "oe");
    params.sort();
    params
}

/// `url` (under `prefix`, the media base `http://host/media/`) signed to expire at `oe`.
fn sign_url(url: &str, prefix: &str, secret: u64, oe: u64) -> String {
    let rest = &url[prefix.len()..];
    let (name, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut params = signed_params(query);
    if !params.iter().any(|(name, _)| name == "_nc_ht") {
        params.push(("_nc_ht".into(), "instagram-sim".into()));
        params.sort();
    }
    let oe = format!("{oe:X}");
    let oh = signature(secret, name, &params, &oe);
    let mut query = serde_urlencoded::to_string(&params).unwrap_or_default();
    query.push_str(&format!("&oh={oh}&oe={oe}"));
    format!("{prefix}{name}?{query}")
}

/// Signs every media URL (strings starting with `prefix`) in a response body.
pub(crate) fn sign_all(value: &mut Value, prefix: &str, secret: u64, oe: u64) {
    match value {
        Value::String(text) if text.starts_with(prefix) => {
            *text = sign_url(text, prefix, secret, oe);
        }
        Value::Array(items) => {
            for item in items {
                sign_all(item, prefix, secret, oe);
            }
        }
        Value::Object(map) => {
            for (_, item) in map.iter_mut() {
                sign_all(item, prefix, secret, oe);
            }
        }
        _ => {}
    }
}

/// Checks the signature and expiry of a request for `/media/{name}?{query}`.
pub(crate) fn verify(
    name: &str,
    query: Option<&str>,
    secret: u64,
    now_secs: u64,
) -> Result<(), UrlRefusal> {
    let query = query.unwrap_or("");
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let find = |wanted: &str| {
        pairs
            .iter()
            .find(|(name, _)| name == wanted)
            .map(|(_, value)| value.as_str())
    };
    let (Some(oh), Some(oe)) = (find("oh"), find("oe")) else {
        return Err(UrlRefusal::BadSignature);
    };
    if signature(secret, name, &signed_params(query), oe) != oh {
        return Err(UrlRefusal::BadSignature);
    }
    let expires = u64::from_str_radix(oe, 16).map_err(|_| UrlRefusal::BadSignature)?;
    if now_secs >= expires {
        return Err(UrlRefusal::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PREFIX: &str = "http://127.0.0.1:1/media/";

    fn query_of(url: &str) -> &str {
        url.split_once('?').unwrap().1
    }

    #[test]
    fn a_signed_url_verifies_until_it_expires_and_not_when_changed() {
        let mut body = json!({"a": [format!("{PREFIX}x.png"), "http://elsewhere/x.png"]});
        sign_all(&mut body, PREFIX, 42, 0x6000_0000);
        let url = body["a"][0].as_str().unwrap().to_owned();
        assert!(url.contains("&oe=60000000"), "{url}");
        assert_eq!(body["a"][1], "http://elsewhere/x.png");
        assert_eq!(
            verify("x.png", Some(query_of(&url)), 42, 0x5fff_ffff),
            Ok(())
        );
        assert_eq!(
            verify("x.png", Some(query_of(&url)), 42, 0x6000_0000),
            Err(UrlRefusal::Expired)
        );
        assert_eq!(
            verify("y.png", Some(query_of(&url)), 42, 0),
            Err(UrlRefusal::BadSignature)
        );
        let later = url.replace("oe=60000000", "oe=70000000");
        assert_eq!(
            verify("x.png", Some(query_of(&later)), 42, 0),
            Err(UrlRefusal::BadSignature)
        );
        assert_eq!(verify("x.png", None, 42, 0), Err(UrlRefusal::BadSignature));
    }

    #[test]
    fn signing_again_replaces_the_old_signature() {
        let mut body = json!(format!("{PREFIX}x.png?size=half"));
        sign_all(&mut body, PREFIX, 1, 10);
        sign_all(&mut body, PREFIX, 1, 20);
        let url = body.as_str().unwrap();
        assert_eq!(url.matches("oh=").count(), 1, "{url}");
        assert!(
            url.contains("size=half") && url.ends_with("&oe=14"),
            "{url}"
        );
        assert_eq!(verify("x.png", Some(query_of(url)), 1, 19), Ok(()));
    }
}
