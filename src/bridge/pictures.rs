//! Profile and group pictures: named by their URL without the signed query
//! (Instagram re-signs the same picture's URL), downloaded only when that
//! name changes and uploaded only when the bytes changed.

use std::time::Duration;

use ruma::{OwnedMxcUri, UserId};
use sha2::{Digest, Sha256};

use super::relay_error::RelayError;
use crate::matrix::client::HomeserverClient;

/// Largest picture downloaded, in bytes.
const MAX_PICTURE_BYTES: usize = 20 * 1024 * 1024;

/// The stable name of a picture: its URL without query or fragment.
pub fn picture_id(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    url[..end].to_owned()
}

/// A picture uploaded to the media repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub mxc: OwnedMxcUri,
    /// SHA-256 of the bytes, hex.
    pub hash: String,
}

/// Downloads pictures from Instagram.
#[derive(Debug, Clone)]
pub struct Pictures {
    http: reqwest::Client,
}

impl Default for Pictures {
    fn default() -> Pictures {
        Pictures::new()
    }
}

impl Pictures {
    pub fn new() -> Pictures {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Pictures { http }
    }

    /// Downloads `url` and uploads it as `as_user`, unless its bytes hash to
    /// `known_hash` (then `None`: the picture already uploaded is the same).
    pub async fn upload_if_changed(
        &self,
        client: &HomeserverClient,
        as_user: &UserId,
        url: &str,
        known_hash: Option<&str>,
    ) -> Result<Option<Uploaded>, RelayError> {
        let failed = |detail: String| RelayError::Picture {
            avatar_id: picture_id(url),
            detail,
        };
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(failed(format!("HTTP {status}")));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?;
        if bytes.len() > MAX_PICTURE_BYTES {
            return Err(failed(format!("{} bytes is too big", bytes.len())));
        }
        let hash = hex_sha256(&bytes);
        if known_hash == Some(hash.as_str()) {
            return Ok(None);
        }
        let mxc = client
            .upload(bytes.to_vec(), content_type.as_deref(), None, Some(as_user))
            .await
            .map_err(RelayError::homeserver("uploading a picture"))?;
        Ok(Some(Uploaded { mxc, hash }))
    }
}

/// SHA-256 of `bytes`, as lowercase hex.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_re_signed_url_names_the_same_picture() {
        let first = "https://cdn.example/v/t51/123_n.jpg?stp=dst&oe=65A0&oh=aa";
        let again = "https://cdn.example/v/t51/123_n.jpg?stp=dst&oe=65B0&oh=bb";
        assert_eq!(picture_id(first), picture_id(again));
        assert_eq!(picture_id(first), "https://cdn.example/v/t51/123_n.jpg");
        assert_ne!(
            picture_id(first),
            picture_id("https://cdn.example/v/t51/456_n.jpg?oe=65A0")
        );
    }
}
