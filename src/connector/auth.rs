//! Credentials for the `cookies` auth type: the login's cookies, the auth
//! state that `response_hooks` store (e.g. `ig_www_claim`), and a stable
//! per-login device identity (device uuid, phone id, Android id, the phone in
//! the user agent), created at login and sent with every request of that
//! login for its life. The bridge stores them encrypted; nothing here ever
//! prints a secret value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// Namespace for deriving a device id from a user id, so a cookie file always
/// yields the same device identity.
const DEVICE_NAMESPACE: Uuid = Uuid::from_u128(0x6d61_7472_6978_2d69_6e73_7461_6772_616d);

/// The phones a device identity may claim: the device half of the Android
/// app's user agent (Android API level/release, screen density, resolution,
/// maker, model, codename, chipset), as common phones send it. The app half
/// (its version) belongs to the spec, which is updated with the app.
const PHONES: &[&str] = &[
    "33/13; 420dpi; 1080x2400; Google/google; Pixel 7; panther; tensor",
    "34/14; 420dpi; 1080x2400; Google/google; Pixel 8; shiba; tensor",
    "34/14; 480dpi; 1080x2340; samsung; SM-S911B; dm1q; qcom",
    "33/13; 450dpi; 1080x2400; samsung; SM-A536B; a53x; s5e8825",
    "31/12; 440dpi; 1080x2400; Xiaomi/Redmi; M2101K6G; sweet; qcom",
];

/// Why a cookie file or pasted cookie set could not be used. Never carries a cookie value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read cookie file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cookie file {path} is not a JSON object of cookie name to string value ({reason})")]
    Format { path: String, reason: String },
    #[error("missing required cookie(s): {}", missing.join(", "))]
    MissingCookies { missing: Vec<String> },
}

/// The credentials of one login.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredCredentials")]
pub struct Credentials {
    /// Cookie name → value, sent as the `Cookie` header.
    pub cookies: BTreeMap<String, String>,
    /// Auth state written by response hooks (`store_as: auth.<name>`), sent back
    /// by templates such as `{{auth.ig_www_claim}}`.
    #[serde(default)]
    pub state: BTreeMap<String, String>,
    /// `{{device.uuid}}`: generated once per login and kept with it.
    pub device_id: String,
    /// `{{device.phone_id}}`: the family device id, generated with `device_id`.
    pub phone_id: String,
    /// `{{device.android_id}}`: `android-` and 16 hex digits, generated with `device_id`.
    pub android_id: String,
    /// `{{device.user_agent}}`: the phone's half of the user agent (one of [`PHONES`]).
    pub user_agent: String,
}

/// [`Credentials`] as stored: credentials sealed before the device identity
/// had more than its uuid get the rest derived from it, the same at every read.
#[derive(Deserialize)]
struct StoredCredentials {
    cookies: BTreeMap<String, String>,
    #[serde(default)]
    state: BTreeMap<String, String>,
    device_id: String,
    #[serde(default)]
    phone_id: String,
    #[serde(default)]
    android_id: String,
    #[serde(default)]
    user_agent: String,
}

impl From<StoredCredentials> for Credentials {
    fn from(stored: StoredCredentials) -> Credentials {
        let derived = DeviceIdentity::from_uuid_only(&stored.device_id);
        let or_derived = |kept: String, derived: String| {
            if kept.is_empty() {
                derived
            } else {
                kept
            }
        };
        Credentials {
            cookies: stored.cookies,
            state: stored.state,
            phone_id: or_derived(stored.phone_id, derived.phone_id),
            android_id: or_derived(stored.android_id, derived.android_id),
            user_agent: or_derived(stored.user_agent, derived.user_agent),
            device_id: stored.device_id,
        }
    }
}

/// One login's device identity: what Instagram sees as the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    pub uuid: String,
    pub phone_id: String,
    pub android_id: String,
    pub user_agent: String,
}

impl DeviceIdentity {
    /// A new random identity, for a new login.
    pub fn random() -> DeviceIdentity {
        DeviceIdentity::from_uuids(Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4())
    }

    /// The identity derived from `seed`: the same seed always gives the same one.
    fn derived(seed: &str) -> DeviceIdentity {
        let derive =
            |part: &str| Uuid::new_v5(&DEVICE_NAMESPACE, format!("{part}:{seed}").as_bytes());
        DeviceIdentity::from_uuids(
            Uuid::new_v5(&DEVICE_NAMESPACE, seed.as_bytes()),
            derive("phone"),
            derive("android"),
        )
    }

    /// The identity of a login of which only the uuid is known: the uuid
    /// kept, the rest derived from it (the same at every call).
    pub fn from_uuid_only(device_id: &str) -> DeviceIdentity {
        DeviceIdentity {
            uuid: device_id.to_owned(),
            ..DeviceIdentity::derived(&format!("device:{device_id}"))
        }
    }

    fn from_uuids(uuid: Uuid, phone: Uuid, android: Uuid) -> DeviceIdentity {
        let android_bytes = android.as_bytes();
        let android_hex: String = android_bytes[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        DeviceIdentity {
            uuid: uuid.to_string(),
            phone_id: phone.to_string(),
            android_id: format!("android-{android_hex}"),
            user_agent: PHONES[usize::from(android_bytes[8]) % PHONES.len()].to_owned(),
        }
    }
}

impl Credentials {
    /// Credentials for a fresh login: a new random device identity.
    pub fn new(cookies: BTreeMap<String, String>) -> Credentials {
        Credentials::with_device(cookies, DeviceIdentity::random())
    }

    /// Credentials with a given device identity (a login's own, kept when
    /// the same account logs in again).
    pub fn with_device(cookies: BTreeMap<String, String>, device: DeviceIdentity) -> Credentials {
        Credentials {
            cookies,
            state: BTreeMap::new(),
            device_id: device.uuid,
            phone_id: device.phone_id,
            android_id: device.android_id,
            user_agent: device.user_agent,
        }
    }

    /// The login's device identity.
    pub fn device(&self) -> DeviceIdentity {
        DeviceIdentity {
            uuid: self.device_id.clone(),
            phone_id: self.phone_id.clone(),
            android_id: self.android_id.clone(),
            user_agent: self.user_agent.clone(),
        }
    }

    /// Credentials from a cookie set whose device identity is derived from the
    /// `ds_user_id` cookie (or, without one, from the cookie names), so that
    /// running the same cookie file twice looks like the same device.
    pub fn from_cookies(cookies: BTreeMap<String, String>) -> Credentials {
        let seed = cookies
            .get("ds_user_id")
            .cloned()
            .unwrap_or_else(|| cookies.keys().cloned().collect::<Vec<_>>().join(","));
        Credentials::with_device(cookies, DeviceIdentity::derived(&seed))
    }

    /// Reads a cookie file: a JSON object of cookie name → value.
    pub fn from_cookie_file(path: &Path) -> Result<Credentials, CredentialsError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_cookie_json(&text).map_err(|reason| CredentialsError::Format {
            path: shown,
            reason,
        })
    }

    /// Parses a JSON object of cookie name → value. The error describes the
    /// problem without quoting the input (it holds secrets).
    pub fn from_cookie_json(text: &str) -> Result<Credentials, String> {
        let value: Value = serde_json::from_str(text).map_err(|err| {
            format!(
                "invalid JSON at line {} column {}",
                err.line(),
                err.column()
            )
        })?;
        let Value::Object(object) = value else {
            return Err("expected a JSON object".to_owned());
        };
        let mut cookies = BTreeMap::new();
        for (name, value) in object {
            match value {
                Value::String(text) => {
                    cookies.insert(name, text);
                }
                Value::Number(number) => {
                    cookies.insert(name, number.to_string());
                }
                _ => return Err(format!("cookie `{name}` is not a string")),
            }
        }
        Ok(Self::from_cookies(cookies))
    }

    /// Checks that every cookie the spec requires is present and non-empty.
    pub fn require_cookies(&self, required: &[String]) -> Result<(), CredentialsError> {
        let missing: Vec<String> = required
            .iter()
            .filter(|name| self.cookies.get(*name).is_none_or(|value| value.is_empty()))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(CredentialsError::MissingCookies { missing })
        }
    }

    /// The `Cookie` request header value.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The platform's id of the logged-in user, when the cookies carry it.
    pub fn user_id(&self) -> Option<&str> {
        self.cookies.get("ds_user_id").map(String::as_str)
    }

    /// `auth` as templates see it: `{"cookies": {...}, <state...>}`.
    pub fn auth_vars(&self) -> Value {
        let mut auth = Map::new();
        auth.insert("cookies".to_owned(), json!(self.cookies));
        for (name, value) in &self.state {
            auth.insert(name.clone(), Value::String(value.clone()));
        }
        Value::Object(auth)
    }

    /// `device` as templates see it: `{"uuid", "phone_id", "android_id", "user_agent"}`.
    pub fn device_vars(&self) -> Value {
        json!({
            "uuid": self.device_id,
            "phone_id": self.phone_id,
            "android_id": self.android_id,
            "user_agent": self.user_agent,
        })
    }

    /// Keeps the cookies a response sets (`Set-Cookie` header values), as a browser's
    /// cookie jar would, so rotated values are sent back. A cookie set to an empty value
    /// (a deletion) is ignored: dropping a required cookie would hide the platform's own
    /// answer (e.g. `login_required`) behind an incomplete-login error.
    pub fn store_set_cookie(&mut self, header_value: &str) {
        let pair = header_value.split(';').next().unwrap_or_default();
        let Some((name, value)) = pair.split_once('=') else {
            return;
        };
        // Quotes are part of the value (as a browser keeps them); `""` is a deletion.
        let (name, value) = (name.trim(), value.trim());
        if !name.is_empty() && !value.is_empty() && value != "\"\"" {
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
    }

    /// Stores a value written by a response hook (`store_as: auth.<name>`).
    pub fn store_state(&mut self, name: &str, value: String) {
        self.state.insert(name.to_owned(), value);
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("cookies", &RedactedKeys(&self.cookies))
            .field("state", &RedactedKeys(&self.state))
            .field("device_id", &self.device_id)
            .field("phone_id", &self.phone_id)
            .field("android_id", &self.android_id)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

/// Shows the names of a map but never its values.
struct RedactedKeys<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for RedactedKeys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|name| (name, "<redacted>")))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Credentials {
        Credentials::from_cookie_json(
            r#"{"sessionid":"SECRET-SESSION","csrftoken":"SECRET-CSRF","ds_user_id":"17841400000000001"}"#,
        )
        .unwrap()
    }

    #[test]
    fn set_cookie_values_replace_cookies_and_deletions_are_ignored() {
        let mut creds = Credentials::new(BTreeMap::from([
            ("csrftoken".to_owned(), "old".to_owned()),
            ("sessionid".to_owned(), "live".to_owned()),
        ]));
        creds.store_set_cookie("csrftoken=new; Domain=.instagram.com; Max-Age=31449600; Path=/");
        creds.store_set_cookie("rur=\"CLN\\05412\"; Path=/; HttpOnly");
        creds.store_set_cookie("sessionid=\"\"; expires=Thu, 01-Jan-1970 00:00:00 GMT; Path=/");
        creds.store_set_cookie("not a cookie");
        assert_eq!(creds.cookies["csrftoken"], "new");
        assert_eq!(creds.cookies["rur"], "\"CLN\\05412\"");
        assert_eq!(creds.cookies["sessionid"], "live");
        assert_eq!(creds.cookies.len(), 3);
    }

    #[test]
    fn debug_output_hides_every_value() {
        let mut creds = sample();
        creds.store_state("ig_www_claim", "SECRET-CLAIM".to_owned());
        let shown = format!("{creds:?}");
        assert!(shown.contains("sessionid"), "{shown}");
        for secret in ["SECRET-SESSION", "SECRET-CSRF", "SECRET-CLAIM"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn device_identity_is_stable_for_the_same_user() {
        assert_eq!(sample().device(), sample().device());
        let other = Credentials::from_cookie_json(r#"{"ds_user_id":"2"}"#).unwrap();
        let (mine, theirs) = (sample().device(), other.device());
        assert_ne!(mine.uuid, theirs.uuid);
        assert_ne!(mine.phone_id, theirs.phone_id);
        assert_ne!(mine.android_id, theirs.android_id);
    }

    #[test]
    fn a_new_login_gets_a_whole_new_device_identity() {
        let (one, two) = (DeviceIdentity::random(), DeviceIdentity::random());
        assert_ne!(one.uuid, two.uuid);
        assert_ne!(one.phone_id, two.phone_id);
        assert_ne!(one.android_id, two.android_id);
        for device in [one, two] {
            let hex = device.android_id.strip_prefix("android-").unwrap();
            assert_eq!(hex.len(), 16, "{}", device.android_id);
            assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{hex}");
            assert!(PHONES.contains(&device.user_agent.as_str()));
            assert_ne!(device.uuid, device.phone_id);
        }
    }

    #[test]
    fn credentials_stored_with_only_a_device_uuid_get_the_same_identity_at_every_read() {
        let stored = r#"{"cookies": {"sessionid": "s"}, "device_id": "0b5b8f3e-8a4e-4b8e-9f55-0d9c2f7a1c11"}"#;
        let first: Credentials = serde_json::from_str(stored).unwrap();
        let again: Credentials = serde_json::from_str(stored).unwrap();
        assert_eq!(first.device(), again.device());
        assert_eq!(first.device_id, "0b5b8f3e-8a4e-4b8e-9f55-0d9c2f7a1c11");
        assert!(first.android_id.starts_with("android-"), "{first:?}");
        let resealed: Credentials =
            serde_json::from_str(&serde_json::to_string(&first).unwrap()).unwrap();
        assert_eq!(resealed.device(), first.device());
    }

    #[test]
    fn cookie_header_joins_every_cookie() {
        assert_eq!(
            sample().cookie_header(),
            "csrftoken=SECRET-CSRF; ds_user_id=17841400000000001; sessionid=SECRET-SESSION"
        );
    }

    #[test]
    fn bad_cookie_json_is_explained_without_quoting_it() {
        let err = Credentials::from_cookie_json(r#"{"sessionid": ["SECRET"]}"#).unwrap_err();
        assert_eq!(err, "cookie `sessionid` is not a string");
        let err = Credentials::from_cookie_json("sessionid=SECRET").unwrap_err();
        assert!(!err.contains("SECRET"), "{err}");
    }

    #[test]
    fn missing_cookies_are_named() {
        let err = sample()
            .require_cookies(&["sessionid".into(), "mid".into(), "ig_did".into()])
            .unwrap_err();
        assert_eq!(err.to_string(), "missing required cookie(s): mid, ig_did");
    }

    #[test]
    fn credentials_round_trip_through_serde() {
        let mut creds = sample();
        creds.store_state("ig_www_claim", "claim".to_owned());
        let text = serde_json::to_string(&creds).unwrap();
        let back: Credentials = serde_json::from_str(&text).unwrap();
        assert_eq!(back, creds);
    }
}
