//! The web login a browser (Playwright) drives: `/accounts/login/`, the 2FA step
//! `/accounts/login/two_factor/`, the "This was me" `/challenge/` page, and the logged-in
//! pages `/` and `/direct/inbox/`. Success sets sessionid, csrftoken, ds_user_id, mid, ig_did.
//! With the `consent_dialog` setting, the login page first shows the cookie-consent dialog
//! of EU visitors: the form is disabled and no login is taken until a choice is posted.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::api::{parse_cookies, parse_form};
use crate::world::{random_token, PendingLogin, World};
use crate::SharedWorld;

const WRONG_PASSWORD: &str =
    "Sorry, your password was incorrect. Please double-check your password.";
const UNKNOWN_USER: &str =
    "The username you entered doesn't belong to an account. Please check your username and try again.";
const WRONG_CODE: &str = "Please check the security code and try again.";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n{body}\n</body></html>\n",
        escape(title)
    )
}

fn error_line(error: Option<&str>) -> String {
    error.map_or_else(String::new, |error| {
        format!(
            "<p id=\"slfErrorAlert\" role=\"alert\">{}</p>",
            escape(error)
        )
    })
}

fn redirect(location: &str, cookies: &[String]) -> Response {
    let mut response =
        (StatusCode::FOUND, [(header::LOCATION, location.to_owned())]).into_response();
    for cookie in cookies {
        if let Ok(value) = cookie.parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The cookie recording the visitor's consent choice.
const CONSENT_COOKIE: &str = "ig_consent";

/// The dialog over the login page until the visitor chooses; its buttons post the choice.
const CONSENT_DIALOG: &str = "<div role=\"dialog\" aria-modal=\"true\" aria-label=\"Allow the use of cookies from Instagram on this browser?\">\n\
     <h2>Allow the use of cookies from Instagram on this browser?</h2>\n\
     <p>We use cookies to help provide and improve content on Instagram.</p>\n\
     <form method=\"post\" action=\"/accounts/login/\">\n\
     <button type=\"submit\" name=\"cookie_choice\" value=\"all\">Allow all cookies</button>\n\
     <button type=\"submit\" name=\"cookie_choice\" value=\"essential\">Decline optional cookies</button>\n\
     </form></div>";

/// The login form; `blocked` (consent pending) disables it under the consent dialog.
fn login_form(csrftoken: &str, error: Option<&str>, blocked: bool) -> String {
    let disabled = if blocked { " disabled" } else { "" };
    let dialog = if blocked { CONSENT_DIALOG } else { "" };
    page(
        "Login • Instagram",
        &format!(
            "<main><h1>Instagram</h1>\n<form id=\"loginForm\" method=\"post\" action=\"/accounts/login/\">\n\
             <input type=\"hidden\" name=\"csrfmiddlewaretoken\" value=\"{}\">\n\
             <label>Phone number, username, or email <input type=\"text\" name=\"username\" aria-label=\"Phone number, username, or email\" autocomplete=\"username\"{disabled}></label>\n\
             <label>Password <input type=\"password\" name=\"password\" aria-label=\"Password\" autocomplete=\"current-password\"{disabled}></label>\n\
             <button type=\"submit\"{disabled}>Log in</button>\n{}\n</form></main>\n{dialog}",
            escape(csrftoken),
            error_line(error)
        ),
    )
}

/// Whether the login page must still ask for cookie consent.
fn consent_pending(world: &World, headers: &HeaderMap) -> bool {
    world.settings.consent_dialog && !parse_cookies(headers).contains_key(CONSENT_COOKIE)
}

/// The csrftoken cookie the browser holds, or a new one (set on the login page).
fn browser_csrftoken(headers: &HeaderMap) -> (String, bool) {
    match parse_cookies(headers).get("csrftoken") {
        Some(token) if !token.is_empty() => (token.clone(), false),
        _ => (random_token(32), true),
    }
}

fn with_csrf_cookie(html: String, csrftoken: &str, is_new: bool) -> Response {
    let mut response = Html(html).into_response();
    if is_new {
        if let Ok(value) = format!("csrftoken={csrftoken}; Path=/; SameSite=Lax").parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

pub(crate) async fn login_page(State(shared): State<SharedWorld>, headers: HeaderMap) -> Response {
    let blocked = consent_pending(&crate::lock(&shared), &headers);
    let (csrftoken, is_new) = browser_csrftoken(&headers);
    with_csrf_cookie(login_form(&csrftoken, None, blocked), &csrftoken, is_new)
}

pub(crate) async fn login_submit(
    State(shared): State<SharedWorld>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_form(&body);
    let (csrftoken, is_new) = browser_csrftoken(&headers);
    // The consent dialog's buttons: the choice is remembered, the login page shown again.
    if let Some(choice) = form.get("cookie_choice") {
        if choice == "all" || choice == "essential" {
            let cookie = format!("{CONSENT_COOKIE}={choice}; Path=/; SameSite=Lax");
            return redirect("/accounts/login/", &[cookie]);
        }
    }
    let username = form.get("username").map_or("", String::as_str);
    let password = form.get("password").map_or("", String::as_str);
    let mut world = crate::lock(&shared);
    // No login before the visitor has chosen: the page comes back with the dialog.
    if consent_pending(&world, &headers) {
        return with_csrf_cookie(login_form(&csrftoken, None, true), &csrftoken, is_new);
    }
    let Some(account) = world.account_by_username(username) else {
        return with_csrf_cookie(
            login_form(&csrftoken, Some(UNKNOWN_USER), false),
            &csrftoken,
            is_new,
        );
    };
    if account.password != password {
        return with_csrf_cookie(
            login_form(&csrftoken, Some(WRONG_PASSWORD), false),
            &csrftoken,
            is_new,
        );
    }
    let pk = account.pk;
    let needs_two_factor = account.two_factor_code.is_some();
    let needs_challenge = account.challenge;
    if !needs_two_factor && !needs_challenge {
        return complete_login(&mut world, pk, &csrftoken);
    }
    let token = random_token(24);
    world.pending_logins.insert(
        token.clone(),
        PendingLogin {
            pk,
            csrftoken,
            needs_two_factor,
        },
    );
    if needs_two_factor {
        redirect(&format!("/accounts/login/two_factor/?token={token}"), &[])
    } else {
        redirect(&format!("/challenge/?token={token}"), &[])
    }
}

/// Opens a session and hands its cookies to the browser, then sends it home.
fn complete_login(world: &mut World, pk: u64, csrftoken: &str) -> Response {
    let cookies = world.new_session(pk, csrftoken);
    let set_cookies: Vec<String> = cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}; Path=/; SameSite=Lax"))
        .collect();
    redirect("/", &set_cookies)
}

fn two_factor_form(token: &str, error: Option<&str>) -> String {
    page(
        "Two-factor authentication • Instagram",
        &format!(
            "<main><h1>Enter Security Code</h1>\n<p>Enter the code we sent to your phone.</p>\n\
             <form id=\"twoFactorForm\" method=\"post\" action=\"/accounts/login/two_factor/\">\n\
             <input type=\"hidden\" name=\"token\" value=\"{}\">\n\
             <label>Security Code <input type=\"text\" name=\"verificationCode\" aria-label=\"Security Code\" inputmode=\"numeric\" autocomplete=\"one-time-code\"></label>\n\
             <button type=\"submit\">Confirm</button>\n{}\n</form></main>",
            escape(token),
            error_line(error)
        ),
    )
}

pub(crate) async fn two_factor_page(Query(query): Query<BTreeMap<String, String>>) -> Response {
    let token = query.get("token").map_or("", String::as_str);
    Html(two_factor_form(token, None)).into_response()
}

pub(crate) async fn two_factor_submit(State(shared): State<SharedWorld>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let token = form.get("token").cloned().unwrap_or_default();
    let code = form.get("verificationCode").map_or("", |code| code.trim());
    let mut world = crate::lock(&shared);
    let Some(pending) = world.pending_logins.get(&token) else {
        return redirect("/accounts/login/", &[]);
    };
    let pk = pending.pk;
    let expected = world
        .accounts
        .get(&pk)
        .and_then(|account| account.two_factor_code.clone());
    if expected.as_deref() != Some(code) {
        return Html(two_factor_form(&token, Some(WRONG_CODE))).into_response();
    }
    let challenge = world
        .accounts
        .get(&pk)
        .is_some_and(|account| account.challenge);
    if challenge {
        if let Some(pending) = world.pending_logins.get_mut(&token) {
            pending.needs_two_factor = false;
        }
        return redirect(&format!("/challenge/?token={token}"), &[]);
    }
    let Some(pending) = world.pending_logins.remove(&token) else {
        return redirect("/accounts/login/", &[]);
    };
    complete_login(&mut world, pk, &pending.csrftoken)
}

pub(crate) async fn challenge_page(Query(query): Query<BTreeMap<String, String>>) -> Response {
    let token = query.get("token").map_or("", String::as_str);
    Html(page(
        "Challenge • Instagram",
        &format!(
            "<main><h1>We Detected An Unusual Login Attempt</h1>\n<p>To secure your account, confirm that this was you.</p>\n\
             <form id=\"challengeForm\" method=\"post\" action=\"/challenge/\">\n\
             <input type=\"hidden\" name=\"token\" value=\"{}\">\n\
             <button type=\"submit\" name=\"choice\" value=\"0\">This Was Me</button>\n</form></main>",
            escape(token)
        ),
    ))
    .into_response()
}

/// "This was me": clears the account's challenge, for a pending login (token) or for a
/// browser that already holds a session.
pub(crate) async fn challenge_submit(
    State(shared): State<SharedWorld>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_form(&body);
    let token = form.get("token").cloned().unwrap_or_default();
    let mut world = crate::lock(&shared);
    if let Some(pending) = world.pending_logins.remove(&token) {
        if pending.needs_two_factor {
            world.pending_logins.insert(token.clone(), pending);
            return redirect(&format!("/accounts/login/two_factor/?token={token}"), &[]);
        }
        if let Some(account) = world.accounts.get_mut(&pending.pk) {
            account.challenge = false;
        }
        return complete_login(&mut world, pending.pk, &pending.csrftoken);
    }
    match session_account(&world, &headers) {
        Some(pk) => {
            if let Some(account) = world.accounts.get_mut(&pk) {
                account.challenge = false;
            }
            redirect("/", &[])
        }
        None => redirect("/accounts/login/", &[]),
    }
}

fn session_account(world: &World, headers: &HeaderMap) -> Option<u64> {
    let cookies = parse_cookies(headers);
    world
        .sessions
        .get(cookies.get("sessionid")?)
        .map(|session| session.pk)
}

fn nav(world: &World, pk: u64) -> String {
    let username = world
        .accounts
        .get(&pk)
        .map_or("", |account| account.username.as_str());
    // Signed like every media URL, so the picture loads.
    let mut avatar = serde_json::json!(crate::render::profile_pic_url(world, pk));
    world.sign_media_urls(&mut avatar);
    format!(
        "<nav><a href=\"/\" aria-label=\"Home\">Home</a> <a href=\"/direct/inbox/\" aria-label=\"Direct messaging\">Messages</a> \
         <img data-testid=\"user-avatar\" alt=\"{}\" src=\"{}\" width=\"24\" height=\"24\"></nav>",
        escape(username),
        escape(avatar.as_str().unwrap_or_default())
    )
}

pub(crate) async fn home(State(shared): State<SharedWorld>, headers: HeaderMap) -> Response {
    let world = crate::lock(&shared);
    let Some(pk) = session_account(&world, &headers) else {
        return redirect("/accounts/login/", &[]);
    };
    let name = world
        .accounts
        .get(&pk)
        .map_or("", |account| account.full_name.as_str());
    Html(page(
        "Instagram",
        &format!(
            "{}\n<main><h1>Welcome, {}</h1></main>",
            nav(&world, pk),
            escape(name)
        ),
    ))
    .into_response()
}

pub(crate) async fn direct_inbox(
    State(shared): State<SharedWorld>,
    headers: HeaderMap,
) -> Response {
    let world = crate::lock(&shared);
    let Some(pk) = session_account(&world, &headers) else {
        return redirect("/accounts/login/", &[]);
    };
    let threads: String = world
        .threads
        .values()
        .filter(|thread| thread.members.contains(&pk) && !thread.items.is_empty())
        .map(|thread| {
            let title = thread.title.clone().unwrap_or_else(|| {
                thread
                    .members
                    .iter()
                    .filter(|member| **member != pk)
                    .filter_map(|member| world.accounts.get(member))
                    .map(|account| account.full_name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            format!(
                "<li data-thread-id=\"{}\">{}</li>",
                thread.thread_id,
                escape(&title)
            )
        })
        .collect();
    Html(page(
        "Inbox • Direct",
        &format!(
            "{}\n<main><h1>Chats</h1><ul>{threads}</ul></main>",
            nav(&world, pk)
        ),
    ))
    .into_response()
}
