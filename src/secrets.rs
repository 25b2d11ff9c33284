//! Credentials at rest: AES-256-GCM sealing of login credentials with the key
//! from the config (`encryption.key`) or `MATRIX_INSTAGRAM_KEY`.
//!
//! A sealed value is `v1:` followed by base64 of `nonce || ciphertext`, with a
//! fresh random nonce per value. The owner (the login's Matrix user id) is
//! bound in as associated data, so a blob copied onto another login does not
//! open.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The environment variable that overrides `encryption.key`.
pub const KEY_ENV: &str = "MATRIX_INSTAGRAM_KEY";

/// The prefix of the current sealing format.
const VERSION_PREFIX: &str = "v1:";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// Why a key could not be read or a value could not be sealed or opened.
/// Never carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("no encryption key: set encryption.key in the config or {KEY_ENV} (base64 of {KEY_LEN} random bytes)")]
    KeyMissing,
    #[error("the encryption key is not valid base64")]
    KeyNotBase64,
    #[error("the encryption key must decode to {KEY_LEN} bytes, not {0}")]
    KeyLength(usize),
    #[error("stored credentials use an unknown format (expected the `{VERSION_PREFIX}` prefix)")]
    UnknownVersion,
    #[error("stored credentials are malformed: {0}")]
    Malformed(&'static str),
    #[error("stored credentials cannot be decrypted with the configured key")]
    WrongKey,
    #[error("credentials could not be serialized: {0}")]
    Serialize(String),
}

/// A 256-bit credential encryption key.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialKey([u8; KEY_LEN]);

impl CredentialKey {
    /// A new random key.
    pub fn generate() -> CredentialKey {
        let mut bytes = [0u8; KEY_LEN];
        rand::thread_rng().fill_bytes(&mut bytes);
        CredentialKey(bytes)
    }

    /// Reads a key written as base64 of 32 bytes (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<CredentialKey, SecretsError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| SecretsError::KeyNotBase64)?;
        let bytes: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|bytes: Vec<u8>| SecretsError::KeyLength(bytes.len()))?;
        Ok(CredentialKey(bytes))
    }

    /// The key as base64, the form the config file holds.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

impl fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialKey(<redacted>)")
    }
}

/// An encrypted value as stored in the database (`v1:` + base64).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(String);

impl Sealed {
    /// Wraps text read back from storage; it is checked when opened.
    pub fn from_stored(text: String) -> Sealed {
        Sealed(text)
    }

    /// The text to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Text read back from storage (what [`Sealed::from_stored`] does).
impl From<String> for Sealed {
    fn from(text: String) -> Sealed {
        Sealed::from_stored(text)
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} chars)", self.0.len())
    }
}

/// Opened plaintext; its Debug output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// Seals and opens credentials with one key.
#[derive(Clone)]
pub struct CredentialCipher {
    cipher: Aes256Gcm,
}

impl fmt::Debug for CredentialCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialCipher(<redacted>)")
    }
}

impl CredentialCipher {
    pub fn new(key: &CredentialKey) -> CredentialCipher {
        CredentialCipher {
            cipher: Aes256Gcm::new(&key.0.into()),
        }
    }

    /// Encrypts `plaintext` for `owner` (the login's Matrix user id).
    pub fn seal(&self, owner: &str, plaintext: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: owner.as_bytes(),
                },
            )
            // AES-GCM encryption fails only for inputs beyond 64 GiB.
            .expect("AES-GCM encryption of an in-memory value");
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Sealed(format!("{VERSION_PREFIX}{}", BASE64.encode(blob)))
    }

    /// Decrypts a value sealed for `owner`.
    pub fn open(&self, owner: &str, sealed: &Sealed) -> Result<SecretBytes, SecretsError> {
        let encoded = sealed
            .0
            .strip_prefix(VERSION_PREFIX)
            .ok_or(SecretsError::UnknownVersion)?;
        let blob = BASE64
            .decode(encoded)
            .map_err(|_| SecretsError::Malformed("not base64"))?;
        if blob.len() < NONCE_LEN {
            return Err(SecretsError::Malformed("shorter than a nonce"));
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: owner.as_bytes(),
                },
            )
            .map(SecretBytes)
            .map_err(|_| SecretsError::WrongKey)
    }

    /// Seals a value serialized as JSON.
    pub fn seal_json<T: Serialize>(&self, owner: &str, value: &T) -> Result<Sealed, SecretsError> {
        // The serde error names a field or position, never the value itself.
        let json = serde_json::to_vec(value).map_err(|e| SecretsError::Serialize(e.to_string()))?;
        Ok(self.seal(owner, &json))
    }

    /// Opens a value sealed by [`CredentialCipher::seal_json`].
    pub fn open_json<T: DeserializeOwned>(
        &self,
        owner: &str,
        sealed: &Sealed,
    ) -> Result<T, SecretsError> {
        let plaintext = self.open(owner, sealed)?;
        serde_json::from_slice(plaintext.expose()).map_err(|e| {
            // Line and column only: serde_json's message can quote the input.
            SecretsError::Serialize(format!(
                "sealed JSON does not match the expected shape (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "@alice:example.org";

    #[test]
    fn sealed_value_opens_with_the_same_key_and_owner() {
        let cipher = CredentialCipher::new(&CredentialKey::generate());
        let sealed = cipher.seal(OWNER, b"sessionid=abc");
        assert!(sealed.as_str().starts_with("v1:"));
        assert!(!sealed.as_str().contains("sessionid"));
        let opened = cipher.open(OWNER, &sealed).expect("opens");
        assert_eq!(opened.expose(), b"sessionid=abc");
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let cipher = CredentialCipher::new(&CredentialKey::generate());
        assert_ne!(cipher.seal(OWNER, b"same"), cipher.seal(OWNER, b"same"));
    }

    #[test]
    fn wrong_key_gives_a_clear_error_without_plaintext() {
        let sealed = CredentialCipher::new(&CredentialKey::generate()).seal(OWNER, b"secret");
        let other = CredentialCipher::new(&CredentialKey::generate());
        let error = other.open(OWNER, &sealed).expect_err("wrong key");
        assert!(matches!(error, SecretsError::WrongKey));
        assert_eq!(
            error.to_string(),
            "stored credentials cannot be decrypted with the configured key"
        );
    }

    #[test]
    fn blob_moved_to_another_owner_does_not_open() {
        let cipher = CredentialCipher::new(&CredentialKey::generate());
        let sealed = cipher.seal(OWNER, b"secret");
        assert!(matches!(
            cipher.open("@mallory:example.org", &sealed),
            Err(SecretsError::WrongKey)
        ));
    }

    #[test]
    fn malformed_and_unversioned_values_are_rejected() {
        let cipher = CredentialCipher::new(&CredentialKey::generate());
        let cases = [
            ("plain text", "unknown format"),
            ("v1:***", "not base64"),
            ("v1:AAAA", "shorter than a nonce"),
        ];
        for (stored, expected) in cases {
            let error = cipher
                .open(OWNER, &Sealed::from_stored(stored.to_owned()))
                .expect_err(stored);
            assert!(error.to_string().contains(expected), "{stored}: {error}");
        }
    }

    #[test]
    fn tampered_ciphertext_does_not_open() {
        let cipher = CredentialCipher::new(&CredentialKey::generate());
        let sealed = cipher.seal(OWNER, b"secret");
        let mut blob = BASE64.decode(&sealed.as_str()[3..]).unwrap();
        *blob.last_mut().unwrap() ^= 1;
        let tampered = Sealed::from_stored(format!("v1:{}", BASE64.encode(blob)));
        assert!(matches!(
            cipher.open(OWNER, &tampered),
            Err(SecretsError::WrongKey)
        ));
    }

    #[test]
    fn key_roundtrips_through_base64_and_checks_length() {
        let key = CredentialKey::generate();
        assert_eq!(CredentialKey::from_base64(&key.to_base64()).unwrap(), key);
        assert!(matches!(
            CredentialKey::from_base64(&BASE64.encode([0u8; 16])),
            Err(SecretsError::KeyLength(16))
        ));
        assert!(matches!(
            CredentialKey::from_base64("not base64!"),
            Err(SecretsError::KeyNotBase64)
        ));
    }

    #[test]
    fn json_roundtrip_and_debug_output_redact_secrets() {
        let key = CredentialKey::generate();
        let cipher = CredentialCipher::new(&key);
        let cookies = serde_json::json!({"sessionid": "s3cr3t-cookie"});
        let sealed = cipher.seal_json(OWNER, &cookies).unwrap();
        let opened: serde_json::Value = cipher.open_json(OWNER, &sealed).unwrap();
        assert_eq!(opened, cookies);

        let plaintext = cipher.open(OWNER, &sealed).unwrap();
        let debug = format!("{key:?} {cipher:?} {sealed:?} {plaintext:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(!debug.contains(&key.to_base64()), "{debug}");
    }
}
