//! The `login-cookies <paste>` command: a login from the cookies of a browser
//! where the user is logged in. The paste may be a `Cookie:` header (or
//! `name=value; ...`), a JSON object of name to value, a cookie extension's
//! exported list (`[{name, value, domain, ...}]`, EditThisCookie or
//! Cookie-Editor), or a request copied as cURL from the developer tools.
//!
//! The message is redacted first, whatever it holds and in any room. The
//! cookies the spec requires (`auth.cookies`) must be there and belong to
//! the spec's site; then they are validated and stored exactly as a browser
//! login's (`super::login::verify_cookies`, `super::login::save_verified`).
//! Every way a paste can be wrong has its own answer; none quotes the paste.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use ruma::{EventId, RoomId, UserId};
use serde_json::Value;

use super::commands::{
    Command, CommandContext, CommandError, CommandHandler, CommandRegistry, Reply,
};
use super::login::{redact_secret, save_verified, verify_cookies, SaveTarget};
use super::Bridge;
use crate::config::PermissionLevel;
use crate::connector::http::Connector;
use crate::connector::session::ConnectorError;

/// The command's name, as typed.
const NAME: &str = "login-cookies";

/// Registers `login-cookies`. A line with a paste never reaches the
/// registry's argument parser (it would mangle JSON and quotes): the bot
/// hands it to [`log_in_with_paste`]; the registered command answers the
/// bare `login-cookies` with the accepted formats.
pub fn register(registry: &mut CommandRegistry) {
    registry.register(Command {
        name: NAME,
        usage: "<cookies>",
        description: "Log in with the cookies of a browser where you are logged in to Instagram \
            (send `login-cookies` alone for the formats I read).",
        min_args: 0,
        max_args: 0,
        required: PermissionLevel::User,
        handler: Arc::new(FormatsCommand),
    });
}

/// The paste of a `login-cookies <paste>` command line (without prefix);
/// `None` for any other line, and for `login-cookies` alone.
pub fn paste_of(line: &str) -> Option<&str> {
    let line = line.trim_start();
    let head = line.get(..NAME.len())?;
    if !head.eq_ignore_ascii_case(NAME) {
        return None;
    }
    let rest = &line[NAME.len()..];
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    Some(rest.trim()).filter(|paste| !paste.is_empty())
}

struct FormatsCommand;

#[async_trait]
impl CommandHandler for FormatsCommand {
    async fn run(&self, ctx: &CommandContext<'_>, _args: &[String]) -> Result<Reply, CommandError> {
        Ok(Reply::text(formats(&Site::of(&ctx.bridge.connector))))
    }
}

/// The accepted formats, for the bare command and an unreadable paste.
fn formats(site: &Site) -> String {
    let domain = site.name();
    format!(
        "Send `{NAME}` followed by the cookies of a browser where you are logged in to {domain}, \
         in one of these forms:\n\
         - a Cookie header: `sessionid=...; csrftoken=...; ds_user_id=...`\n\
         - a JSON object: `{{\"sessionid\": \"...\", \"csrftoken\": \"...\", ...}}`\n\
         - a cookie extension's export (EditThisCookie, Cookie-Editor): \
         `[{{\"name\": \"sessionid\", \"value\": \"...\", \"domain\": \".{domain}\"}}, ...]`\n\
         - a request to {domain} copied as cURL from the developer tools: \
         `curl 'https://www.{domain}/' -H 'cookie: ...'`\n\
         Send it in your management room; I redact it as soon as I have read it."
    )
}

/// The site the cookies must belong to: the spec's `auth.domain` and the
/// hosts of the connector's base URLs (the same site, or its stand-in).
#[derive(Debug, Clone)]
pub struct Site {
    domains: Vec<String>,
}

impl Site {
    pub fn of(connector: &Connector) -> Site {
        let urls = connector.base_urls();
        let hosts = [&urls.web, &urls.api]
            .into_iter()
            .filter_map(|url| url::Url::parse(url).ok())
            .filter_map(|url| url.host_str().map(str::to_owned));
        Site::new(
            connector
                .spec()
                .auth
                .domain
                .clone()
                .into_iter()
                .chain(hosts),
        )
    }

    fn new(domains: impl IntoIterator<Item = String>) -> Site {
        let mut seen = Vec::new();
        for domain in domains.into_iter().map(|domain| normalize_domain(&domain)) {
            if !domain.is_empty() && !seen.contains(&domain) {
                seen.push(domain);
            }
        }
        Site { domains: seen }
    }

    /// The site's name in messages.
    fn name(&self) -> &str {
        self.domains.first().map_or("the site", String::as_str)
    }

    /// Whether a cookie of `domain` (or a request to that host) is the site's.
    fn owns(&self, domain: &str) -> bool {
        let domain = normalize_domain(domain);
        self.domains.iter().any(|own| {
            domain == *own
                || domain
                    .strip_suffix(own.as_str())
                    .is_some_and(|sub| sub.ends_with('.'))
        })
    }
}

fn normalize_domain(domain: &str) -> String {
    domain.trim().trim_start_matches('.').to_ascii_lowercase()
}

/// Why a paste cannot be used. Never holds a cookie value: only cookie
/// names, domains and where the text stops making sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasteError {
    #[error("the paste is not in a format I read: {0}")]
    Unreadable(String),
    #[error("the cookies are of another site: {}", .0.iter().cloned().collect::<Vec<_>>().join(", "))]
    OtherSite(BTreeSet<String>),
    #[error("the cURL command carries no cookies")]
    CurlWithoutCookies,
    #[error("missing required cookie(s): {}", .0.join(", "))]
    Missing(Vec<String>),
}

/// Cookies read from a paste: name to value. `Debug` shows the names only.
#[derive(Clone, PartialEq, Eq)]
pub struct PastedCookies(pub BTreeMap<String, String>);

impl fmt::Debug for PastedCookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Reads a paste in any accepted format, keeps the cookies of `site` and
/// checks that every `required` one is there and not empty.
pub fn parse_paste(
    text: &str,
    site: &Site,
    required: &[String],
) -> Result<PastedCookies, PasteError> {
    let Read { cookies, foreign } = read_paste(text.trim(), site)?;
    let missing: Vec<String> = required
        .iter()
        .filter(|name| cookies.get(*name).is_none_or(String::is_empty))
        .cloned()
        .collect();
    if missing.is_empty() {
        Ok(PastedCookies(cookies))
    } else if !foreign.is_empty() {
        // The site's cookies are not there, another site's are.
        Err(PasteError::OtherSite(foreign))
    } else {
        Err(PasteError::Missing(missing))
    }
}

/// The cookies of the site in a paste, and the other sites it names.
struct Read {
    cookies: BTreeMap<String, String>,
    foreign: BTreeSet<String>,
}

impl Read {
    fn of_site(cookies: BTreeMap<String, String>) -> Read {
        Read {
            cookies,
            foreign: BTreeSet::new(),
        }
    }
}

fn read_paste(text: &str, site: &Site) -> Result<Read, PasteError> {
    let first_word = text.split_whitespace().next().unwrap_or_default();
    if first_word.eq_ignore_ascii_case("curl") || first_word.eq_ignore_ascii_case("curl.exe") {
        read_curl(text, site)
    } else if text.starts_with('{') || text.starts_with('[') {
        read_json(text, site)
    } else {
        let header = strip_header_name(text).unwrap_or(text);
        read_cookie_header(header).map(Read::of_site)
    }
}

/// The value of a `Cookie: ...` header line, if `text` is one.
fn strip_header_name(text: &str) -> Option<&str> {
    let (name, value) = text.split_once(':')?;
    name.trim()
        .eq_ignore_ascii_case("cookie")
        .then_some(value.trim())
}

/// `name=value; name=value` (also one per line); quoted values are unquoted.
fn read_cookie_header(text: &str) -> Result<BTreeMap<String, String>, PasteError> {
    let not_pairs = || {
        PasteError::Unreadable(
            "it is not JSON, a cURL command, or cookies written as name=value pairs separated by `;`"
                .to_owned(),
        )
    };
    let mut cookies = BTreeMap::new();
    for part in text.split([';', '\n']).map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let (name, value) = part.split_once('=').ok_or_else(not_pairs)?;
        let name = name.trim();
        if !is_cookie_name(name) {
            return Err(not_pairs());
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|value| value.strip_suffix('"'))
            .unwrap_or(value);
        cookies.insert(name.to_owned(), value.to_owned());
    }
    if cookies.is_empty() {
        return Err(not_pairs());
    }
    Ok(cookies)
}

/// A cookie name as RFC 6265 allows it (a token).
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c))
}

/// A JSON object of name to value, or an extension's list of cookie objects.
fn read_json(text: &str, site: &Site) -> Result<Read, PasteError> {
    let value: Value = serde_json::from_str(text).map_err(|err| {
        PasteError::Unreadable(format!(
            "it starts like JSON but is not valid JSON (line {}, column {})",
            err.line(),
            err.column()
        ))
    })?;
    match value {
        Value::Object(object) => {
            let mut cookies = BTreeMap::new();
            for (name, value) in object {
                let value = scalar_text(&value).ok_or_else(|| {
                    PasteError::Unreadable(format!(
                        "in the JSON object, the value of `{name}` is not text"
                    ))
                })?;
                cookies.insert(name, value);
            }
            Ok(Read::of_site(cookies))
        }
        Value::Array(entries) => read_cookie_list(&entries, site),
        _ => Err(PasteError::Unreadable(
            "the JSON is neither an object nor a list of cookies".to_owned(),
        )),
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// An extension's export: `[{"name", "value", "domain", ...}]`. Cookies of
/// other domains are left out (an export of every site is common).
fn read_cookie_list(entries: &[Value], site: &Site) -> Result<Read, PasteError> {
    if entries.is_empty() {
        return Err(PasteError::Unreadable("the JSON list is empty".to_owned()));
    }
    let mut read = Read::of_site(BTreeMap::new());
    for (index, entry) in entries.iter().enumerate() {
        let name = entry.get("name").and_then(Value::as_str);
        let value = entry.get("value").and_then(scalar_text);
        let (Some(name), Some(value)) = (name, value) else {
            return Err(PasteError::Unreadable(format!(
                "entry {} of the JSON list has no text `name` and `value`",
                index + 1
            )));
        };
        match entry.get("domain").and_then(Value::as_str) {
            Some(domain) if !site.owns(domain) => {
                read.foreign.insert(normalize_domain(domain));
            }
            _ => {
                read.cookies.insert(name.to_owned(), value);
            }
        }
    }
    Ok(read)
}

/// Options of curl whose value is the next word.
const CURL_OPTIONS_WITH_VALUE: [&str; 22] = [
    "-H",
    "--header",
    "-b",
    "--cookie",
    "-d",
    "--data",
    "--data-raw",
    "--data-binary",
    "--data-urlencode",
    "--data-ascii",
    "-X",
    "--request",
    "-A",
    "--user-agent",
    "-e",
    "--referer",
    "-u",
    "--user",
    "-o",
    "--output",
    "--url",
    "-F",
];

/// A curl command line: the cookies of its `cookie:` headers and `-b`
/// options; the host of its URL must be the site's.
fn read_curl(text: &str, site: &Site) -> Result<Read, PasteError> {
    let words = shell_words(text).map_err(|problem| {
        PasteError::Unreadable(format!("the cURL command cannot be split: {problem}"))
    })?;
    let mut url = None;
    let mut cookie_lines = Vec::new();
    let mut words = words.iter().skip(1);
    while let Some(word) = words.next() {
        let word = word.as_str();
        if let Some(value) = word.strip_prefix("--url=") {
            url = Some(value.to_owned());
        } else if CURL_OPTIONS_WITH_VALUE.contains(&word) {
            let Some(value) = words.next() else { break };
            match word {
                "-H" | "--header" => {
                    if let Some(cookies) = strip_header_name(value) {
                        cookie_lines.push(cookies.to_owned());
                    }
                }
                // Without `=` the option names a cookie file, which is not in the paste.
                "-b" | "--cookie" if value.contains('=') => cookie_lines.push(value.clone()),
                "--url" => url = Some(value.clone()),
                _ => {}
            }
        } else if !word.starts_with('-') && url.is_none() {
            url = Some(word.to_owned());
        }
    }
    if let Some(url) = url {
        let host = url::Url::parse(&url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned));
        match host {
            Some(host) if site.owns(&host) => {}
            Some(host) => return Err(PasteError::OtherSite(BTreeSet::from([host]))),
            None => {
                return Err(PasteError::Unreadable(
                    "the cURL command's URL is not a web address".to_owned(),
                ))
            }
        }
    }
    let mut cookies = BTreeMap::new();
    for line in &cookie_lines {
        cookies.extend(read_cookie_header(line)?);
    }
    if cookies.is_empty() {
        return Err(PasteError::CurlWithoutCookies);
    }
    Ok(Read::of_site(cookies))
}

/// Splits a command line as a shell would: `'...'`, `"..."` (with `\`
/// escapes), `$'...'` (bash's escapes), `\` escapes, and line continuations
/// (`\` at the end of a line as bash writes them, `^` as cmd.exe does).
fn shell_words(text: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' | '^' => {
                if chars.peek() == Some(&'\r') {
                    chars.next();
                }
                match chars.next() {
                    Some('\n') => {}
                    Some(escaped) => {
                        word.push(escaped);
                        in_word = true;
                    }
                    None => return Err("it ends with an escape character"),
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a single quote is not closed"),
                    }
                }
            }
            '$' if chars.peek() == Some(&'\'') => {
                chars.next();
                in_word = true;
                read_ansi_c_quoted(&mut chars, &mut word)?;
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') => {}
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("a double quote is not closed"),
                        },
                        Some(c) => word.push(c),
                        None => return Err("a double quote is not closed"),
                    }
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// The rest of a `$'...'` word (after its opening quote).
fn read_ansi_c_quoted(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    word: &mut String,
) -> Result<(), &'static str> {
    const UNCLOSED: &str = "a $'...' quote is not closed";
    loop {
        match chars.next().ok_or(UNCLOSED)? {
            '\'' => return Ok(()),
            '\\' => match chars.next().ok_or(UNCLOSED)? {
                'n' => word.push('\n'),
                't' => word.push('\t'),
                'r' => word.push('\r'),
                'x' => {
                    let hex: String = std::iter::from_fn(|| chars.next_if(char::is_ascii_hexdigit))
                        .take(2)
                        .collect();
                    let byte =
                        u8::from_str_radix(&hex, 16).map_err(|_| "a \\x escape has no digits")?;
                    word.push(char::from(byte));
                }
                c => word.push(c),
            },
            c => word.push(c),
        }
    }
}

/// Runs `login-cookies <paste>` sent by `sender` in `room_id`: redacts the
/// message, then reads, validates and stores the cookies. Every outcome is
/// a reply for the user.
pub async fn log_in_with_paste(
    bridge: &Bridge,
    room_id: &RoomId,
    sender: &UserId,
    event_id: &EventId,
    in_management_room: bool,
    paste: &str,
) -> Reply {
    let redaction = redact_secret(bridge, room_id, event_id).await;
    let text = if in_management_room {
        log_in(bridge, sender, paste).await
    } else {
        tracing::info!(user = %sender, %room_id, "cookies pasted outside the management room: refused");
        format!(
            "Cookies are as secret as your password: send `{NAME}` in your management room \
             (a direct chat with only me). Anyone in this room may have seen them: log out of \
             Instagram in the browser you copied them from to end that session."
        )
    };
    Reply::text(format!("{text}{redaction}"))
}

/// The login itself; returns the reply's text.
async fn log_in(bridge: &Bridge, sender: &UserId, paste: &str) -> String {
    let mut said = String::new();
    if bridge.login_flows.cancel(sender) {
        said.push_str("I stopped the login that was in progress. ");
    }
    let connector = &bridge.connector;
    let site = Site::of(connector);
    let cookies = match parse_paste(paste, &site, &connector.spec().auth.cookies) {
        Ok(cookies) => cookies,
        Err(error) => {
            tracing::info!(user = %sender, %error, "Instagram login with pasted cookies refused");
            said.push_str(&paste_problem(&error, &site));
            return said;
        }
    };
    tracing::info!(user = %sender, cookies = ?cookies, "Instagram login with pasted cookies started");
    let target = SaveTarget::of(bridge);
    let verified = match verify_cookies(&target, sender, cookies.0, BTreeMap::new(), None).await {
        Ok(verified) => verified,
        Err(error) => {
            tracing::warn!(user = %sender, %error, "Instagram login with pasted cookies failed");
            said.push_str(&validation_problem(&error, &site));
            return said;
        }
    };
    match save_verified(&target, sender, verified).await {
        Ok(message) => {
            tracing::info!(user = %sender, "Instagram login with pasted cookies succeeded");
            said.push_str(&message);
        }
        Err(error) => {
            tracing::warn!(user = %sender, %error, "Instagram login with pasted cookies failed");
            said.push_str(&format!("Login failed: {error}"));
        }
    }
    said
}

/// The answer to a paste that cannot be used.
fn paste_problem(error: &PasteError, site: &Site) -> String {
    let domain = site.name();
    match error {
        PasteError::Unreadable(problem) => {
            format!(
                "I could not read your cookies: {problem}.\n{}",
                formats(site)
            )
        }
        PasteError::OtherSite(domains) => format!(
            "Those cookies are of {}, not of {domain}: copy them from a browser tab on {domain} \
             where you are logged in.",
            domains.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        PasteError::CurlWithoutCookies => format!(
            "That cURL command carries no cookies: in the developer tools (Network tab) of a tab \
             on {domain} where you are logged in, copy a request to {domain} as cURL."
        ),
        PasteError::Missing(missing) => format!(
            "The cookie{} {} {} missing. Copy all the cookies of {domain} from a browser where you \
             are logged in (sessionid is HttpOnly: the developer tools' Application or Storage \
             tab and cookie extensions show it, `document.cookie` does not).",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            if missing.len() == 1 { "is" } else { "are" },
        ),
    }
}

/// The answer when Instagram does not accept the cookies.
fn validation_problem(error: &ConnectorError, site: &Site) -> String {
    let domain = site.name();
    match error {
        ConnectorError::SessionExpired { .. } => format!(
            "Instagram says this session is no longer valid (it expired or was logged out). \
             Log in to {domain} in your browser again, then send fresh cookies."
        ),
        ConnectorError::ChallengeRequired { .. } => format!(
            "Instagram wants to confirm this session: open {domain} in the browser you copied \
             the cookies from, confirm it was you, then send the cookies again."
        ),
        ConnectorError::RateLimited { .. } | ConnectorError::Transient { .. } => format!(
            "I could not check your cookies with Instagram right now ({error}); try again in a \
             few minutes."
        ),
        other => format!("Login failed: Instagram did not accept the cookies: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: &str = "4242%3AsEcReT%3A28%3AAYx";
    const CSRF: &str = "csrfSECRET";

    fn site() -> Site {
        Site::new(["instagram.com".to_owned(), "127.0.0.1".to_owned()])
    }

    fn required() -> Vec<String> {
        ["sessionid", "csrftoken", "ds_user_id", "mid", "ig_did"]
            .map(str::to_owned)
            .to_vec()
    }

    fn parse(text: &str) -> Result<BTreeMap<String, String>, PasteError> {
        parse_paste(text, &site(), &required()).map(|cookies| cookies.0)
    }

    fn full_header() -> String {
        format!("sessionid={SESSION}; csrftoken={CSRF}; ds_user_id=4242; mid=ZmId; ig_did=D1D")
    }

    fn assert_full(cookies: &BTreeMap<String, String>) {
        assert_eq!(cookies["sessionid"], SESSION);
        assert_eq!(cookies["csrftoken"], CSRF);
        assert_eq!(cookies["ds_user_id"], "4242");
        assert_eq!(cookies["mid"], "ZmId");
        assert_eq!(cookies["ig_did"], "D1D");
    }

    #[test]
    fn the_command_line_names_the_paste() {
        assert_eq!(paste_of("login-cookies a=b"), Some("a=b"));
        assert_eq!(
            paste_of("  LOGIN-COOKIES\n{\"a\": 1}\n"),
            Some("{\"a\": 1}")
        );
        assert_eq!(paste_of("login-cookies"), None);
        assert_eq!(paste_of("login-cookies   "), None);
        assert_eq!(paste_of("login-cookiesx a=b"), None);
        assert_eq!(paste_of("login"), None);
    }

    #[test]
    fn reads_a_cookie_header_with_or_without_its_name() {
        assert_full(&parse(&full_header()).unwrap());
        assert_full(&parse(&format!("Cookie: {}", full_header())).unwrap());
        assert_full(&parse(&format!("cookie:{};", full_header())).unwrap());
        let quoted = full_header().replace("csrftoken=csrfSECRET", "csrftoken=\"csrfSECRET\"");
        assert_full(&parse(&quoted).unwrap());
        let one_per_line = full_header().replace("; ", "\n");
        assert_full(&parse(&one_per_line).unwrap());
    }

    #[test]
    fn reads_a_json_object() {
        let json = format!(
            r#"{{"sessionid": "{SESSION}", "csrftoken": "{CSRF}", "ds_user_id": 4242, "mid": "ZmId", "ig_did": "D1D"}}"#
        );
        assert_full(&parse(&json).unwrap());
    }

    #[test]
    fn reads_an_extension_export_keeping_only_the_site() {
        let export = format!(
            r#"[
  {{"domain": ".instagram.com", "hostOnly": false, "httpOnly": true, "name": "sessionid", "path": "/", "secure": true, "value": "{SESSION}", "id": 1}},
  {{"domain": ".instagram.com", "name": "csrftoken", "value": "{CSRF}", "expirationDate": 1790000000.5}},
  {{"domain": ".instagram.com", "name": "ds_user_id", "value": "4242"}},
  {{"domain": "www.instagram.com", "name": "mid", "value": "ZmId"}},
  {{"domain": ".instagram.com", "name": "ig_did", "value": "D1D"}},
  {{"domain": ".facebook.com", "name": "sessionid", "value": "other-site"}}
]"#
        );
        assert_full(&parse(&export).unwrap());
    }

    #[test]
    fn reads_a_curl_command_in_every_quoting_style() {
        let header = full_header();
        let bash = format!(
            "curl 'https://www.instagram.com/api/v1/feed/timeline/' \\\n  -H 'accept: */*' \\\n  -H 'cookie: {header}' \\\n  -H 'x-ig-app-id: 936619743392459' \\\n  --compressed"
        );
        assert_full(&parse(&bash).unwrap());
        let b_option = format!("curl \"https://www.instagram.com/\" -X GET -b \"{header}\"");
        assert_full(&parse(&b_option).unwrap());
        let long_option = format!("curl --url https://i.instagram.com/ --cookie '{header}'");
        assert_full(&parse(&long_option).unwrap());
        let ansi_c = format!(
            "curl $'https://www.instagram.com/' -H $'Cookie: {}' --data-raw $'{{\\'a\\':1}}'",
            header.replace("ZmId", "\\x5amId")
        );
        assert_full(&parse(&ansi_c.replace("\\x5amId", "ZmId")).unwrap());
        assert_full(&parse(&ansi_c).unwrap());
        let cmd = format!(
            "curl \"https://www.instagram.com/\" ^\r\n  -H \"accept: text/html\" ^\r\n  -b \"{header}\" ^\r\n  --compressed"
        );
        assert_full(&parse(&cmd).unwrap());
        let windows_exe =
            format!("curl.exe \"https://www.instagram.com/\" -H \"Cookie: {header}\"");
        assert_full(&parse(&windows_exe).unwrap());
    }

    #[test]
    fn a_missing_sessionid_is_named() {
        let without = "csrftoken=x; ds_user_id=1; mid=m; ig_did=d";
        assert_eq!(
            parse(without),
            Err(PasteError::Missing(vec!["sessionid".to_owned()]))
        );
        assert_eq!(
            parse("{\"sessionid\": \"\", \"csrftoken\": \"x\"}"),
            Err(PasteError::Missing(
                ["sessionid", "ds_user_id", "mid", "ig_did"]
                    .map(str::to_owned)
                    .to_vec()
            ))
        );
    }

    #[test]
    fn cookies_of_another_site_are_refused() {
        let export = r#"[{"domain": ".facebook.com", "name": "sessionid", "value": "v"},
                         {"domain": "accounts.google.com", "name": "SID", "value": "w"}]"#;
        assert_eq!(
            parse(export),
            Err(PasteError::OtherSite(BTreeSet::from([
                "accounts.google.com".to_owned(),
                "facebook.com".to_owned()
            ])))
        );
        let curl = format!(
            "curl 'https://www.facebook.com/' -H 'cookie: {}'",
            full_header()
        );
        assert_eq!(
            parse(&curl),
            Err(PasteError::OtherSite(BTreeSet::from([
                "www.facebook.com".to_owned()
            ])))
        );
        // A look-alike host is another site.
        let curl = format!("curl 'https://notinstagram.com/' -b '{}'", full_header());
        assert!(matches!(parse(&curl), Err(PasteError::OtherSite(_))));
    }

    #[test]
    fn unreadable_pastes_say_what_is_wrong_without_quoting_them() {
        for (paste, problem) in [
            ("hunter2 is my password", "name=value pairs"),
            ("sessionid", "name=value pairs"),
            (
                "{\"sessionid\": \"sEcReT\"",
                "not valid JSON (line 1, column ",
            ),
            ("[]", "the JSON list is empty"),
            ("[{\"name\": \"sessionid\"}]", "entry 1 of the JSON list"),
            (
                "{\"sessionid\": {\"v\": 1}}",
                "the value of `sessionid` is not text",
            ),
            ("\"sEcReT\"", "name=value pairs"),
            (
                "curl 'https://www.instagram.com/ -H 'cookie: a=sEcReT'",
                "not closed",
            ),
            ("curl 'not a url' -b 'a=sEcReT'", "not a web address"),
            (
                "curl https://www.instagram.com/ -H 'Cookie: sEcReT value'",
                "name=value pairs",
            ),
        ] {
            let error = parse(paste).unwrap_err();
            let PasteError::Unreadable(said) = &error else {
                panic!("{paste:?} gave {error:?}");
            };
            assert!(said.contains(problem), "{paste:?}: {said}");
            assert!(
                !said.contains("sEcReT") && !said.contains("hunter2"),
                "{said}"
            );
        }
    }

    #[test]
    fn a_curl_command_without_cookies_is_told_so() {
        assert_eq!(
            parse("curl 'https://www.instagram.com/' -H 'accept: */*' -b cookies.txt"),
            Err(PasteError::CurlWithoutCookies)
        );
    }

    #[test]
    fn every_answer_names_no_secret() {
        let site = site();
        for error in [
            PasteError::Unreadable("x".to_owned()),
            PasteError::OtherSite(BTreeSet::from(["facebook.com".to_owned()])),
            PasteError::CurlWithoutCookies,
            PasteError::Missing(vec!["sessionid".to_owned()]),
        ] {
            let answer = paste_problem(&error, &site);
            assert!(answer.contains("instagram.com"), "{answer}");
        }
        assert!(
            paste_problem(&PasteError::Missing(vec!["sessionid".to_owned()]), &site)
                .starts_with("The cookie sessionid is missing.")
        );
        let formats = formats(&site);
        for example in ["sessionid=...", "{\"sessionid\"", "[{\"name\"", "curl '"] {
            assert!(formats.contains(example), "{formats}");
        }
        let cookies = parse(&full_header()).unwrap();
        let shown = format!("{:?}", PastedCookies(cookies));
        assert!(
            !shown.contains(SESSION) && shown.contains("sessionid"),
            "{shown}"
        );
    }

    #[test]
    fn the_site_owns_its_subdomains_only() {
        let site = site();
        assert!(site.owns(".instagram.com"));
        assert!(site.owns("www.Instagram.com"));
        assert!(site.owns("127.0.0.1"));
        assert!(!site.owns("notinstagram.com"));
        assert!(!site.owns("instagram.com.evil.example"));
    }
}
