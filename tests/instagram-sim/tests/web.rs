//! The web login over real HTTP: the form, wrong password, success with cookies and the
//! home page markup, the 2FA step and the "This was me" challenge.

// The web tests use only the GET half of the shared API client.
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;

use instagram_sim::Simulator;
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use support::ApiClient;

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// name → value of every Set-Cookie header.
fn set_cookies(response: &reqwest::Response) -> BTreeMap<String, String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| {
            let text = value.to_str().ok()?;
            assert!(text.contains("Path=/"), "cookie {text:?} has Path=/");
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

async fn submit(sim: &Simulator, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    browser()
        .post(format!("{}{path}", sim.base_url()))
        .header("Cookie", "csrftoken=browsercsrf")
        .form(form)
        .send()
        .await
        .unwrap()
}

fn cookie_header(cookies: &BTreeMap<String, String>) -> String {
    cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ")
}

const SESSION_COOKIES: [&str; 5] = ["csrftoken", "ds_user_id", "ig_did", "mid", "sessionid"];

#[tokio::test]
async fn password_login_sets_cookies_and_shows_the_home_page() {
    let sim = Simulator::start().await;
    let account = sim
        .create_account_with_password("web.user", "Web User", "s3cret")
        .unwrap();

    let page = browser()
        .get(format!("{}/accounts/login/", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(set_cookies(&page).contains_key("csrftoken"));
    let html = page.text().await.unwrap();
    for needle in [
        "name=\"username\"",
        "name=\"password\"",
        "type=\"password\"",
        "<button type=\"submit\">Log in</button>",
    ] {
        assert!(html.contains(needle), "login form has {needle}");
    }

    let wrong = submit(
        &sim,
        "/accounts/login/",
        &[("username", "web.user"), ("password", "nope")],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::OK);
    assert!(!set_cookies(&wrong).contains_key("sessionid"));
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("Sorry, your password was incorrect."));
    let unknown = submit(
        &sim,
        "/accounts/login/",
        &[("username", "nobody"), ("password", "x")],
    )
    .await;
    assert!(unknown
        .text()
        .await
        .unwrap()
        .contains("belong to an account"));

    let ok = submit(
        &sim,
        "/accounts/login/",
        &[("username", "web.user"), ("password", "s3cret")],
    )
    .await;
    assert_eq!(ok.status(), StatusCode::FOUND);
    assert_eq!(location(&ok), "/");
    let cookies = set_cookies(&ok);
    assert_eq!(
        cookies.keys().map(String::as_str).collect::<Vec<_>>(),
        SESSION_COOKIES
    );
    assert_eq!(cookies["ds_user_id"], account.pk.to_string());
    assert_eq!(
        cookies["csrftoken"], "browsercsrf",
        "the page's csrftoken is kept"
    );

    let home = browser()
        .get(format!("{}/", sim.base_url()))
        .header("Cookie", cookie_header(&cookies))
        .send()
        .await
        .unwrap();
    let html = home.text().await.unwrap();
    assert!(html.contains("aria-label=\"Home\""));
    assert!(html.contains("data-testid=\"user-avatar\" alt=\"web.user\""));
    let avatar = html
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let picture = browser().get(&avatar).send().await.unwrap();
    assert_eq!(picture.status(), StatusCode::OK, "{avatar}");
    let inbox = browser()
        .get(format!("{}/direct/inbox/", sim.base_url()))
        .header("Cookie", cookie_header(&cookies))
        .send()
        .await
        .unwrap();
    assert_eq!(inbox.status(), StatusCode::OK);

    let anonymous = browser()
        .get(format!("{}/", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::FOUND);
    assert_eq!(location(&anonymous), "/accounts/login/");

    let api = ApiClient::new(sim.api_base_url(), cookies);
    let current = api
        .get_ok("accounts/current_user/", &[("edit", "true")])
        .await;
    assert_eq!(current["user"]["username"], "web.user");
}

#[tokio::test]
async fn two_factor_login_needs_the_code() {
    let sim = Simulator::start().await;
    let account = sim
        .create_account_with_password("two.factor", "Two Factor", "pw")
        .unwrap();
    sim.set_two_factor(account.pk, Some("123456")).unwrap();

    let step = submit(
        &sim,
        "/accounts/login/",
        &[("username", "two.factor"), ("password", "pw")],
    )
    .await;
    assert_eq!(step.status(), StatusCode::FOUND);
    assert!(!set_cookies(&step).contains_key("sessionid"));
    let next = location(&step);
    assert!(next.starts_with("/accounts/login/two_factor/?token="));
    let token = next.split_once("token=").unwrap().1.to_owned();

    let page = browser()
        .get(format!("{}{next}", sim.base_url()))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("name=\"verificationCode\""));
    assert!(html.contains(&format!("value=\"{token}\"")));

    let wrong = submit(
        &sim,
        "/accounts/login/two_factor/",
        &[("token", &token), ("verificationCode", "000000")],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::OK);
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("Please check the security code"));

    let ok = submit(
        &sim,
        "/accounts/login/two_factor/",
        &[("token", &token), ("verificationCode", "123456")],
    )
    .await;
    assert_eq!(ok.status(), StatusCode::FOUND);
    assert_eq!(location(&ok), "/");
    let cookies = set_cookies(&ok);
    assert_eq!(cookies["ds_user_id"], account.pk.to_string());

    let reused = submit(
        &sim,
        "/accounts/login/two_factor/",
        &[("token", &token), ("verificationCode", "123456")],
    )
    .await;
    assert_eq!(location(&reused), "/accounts/login/", "a token works once");
}

#[tokio::test]
async fn a_challenged_account_confirms_this_was_me() {
    let sim = Simulator::start().await;
    let account = sim
        .create_account_with_password("flagged.one", "Flagged One", "pw")
        .unwrap();
    sim.flag_challenge(account.pk).unwrap();
    let old_api = ApiClient::new(sim.api_base_url(), account.cookies.clone());
    assert_eq!(
        old_api.get("direct_v2/inbox/", &[]).await.status,
        StatusCode::BAD_REQUEST
    );

    let step = submit(
        &sim,
        "/accounts/login/",
        &[("username", "flagged.one"), ("password", "pw")],
    )
    .await;
    let next = location(&step);
    assert!(next.starts_with("/challenge/?token="));
    let page = browser()
        .get(format!("{}{next}", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("This Was Me"));
    let token = next.split_once("token=").unwrap().1.to_owned();
    let ok = submit(&sim, "/challenge/", &[("token", &token), ("choice", "0")]).await;
    assert_eq!(ok.status(), StatusCode::FOUND);
    let cookies = set_cookies(&ok);
    assert_eq!(cookies["ds_user_id"], account.pk.to_string());
    let api = ApiClient::new(sim.api_base_url(), cookies);
    api.get_ok("direct_v2/inbox/", &[]).await;
    old_api.get_ok("direct_v2/inbox/", &[]).await;
}

#[tokio::test]
async fn the_consent_dialog_blocks_the_login_until_a_choice_is_made() {
    let sim = Simulator::start().await;
    sim.create_account_with_password("eu.user", "EU User", "s3cret")
        .unwrap();
    let login_page = |cookie: &'static str| {
        browser()
            .get(format!("{}/accounts/login/", sim.base_url()))
            .header("Cookie", cookie)
            .send()
    };
    let credentials = [("username", "eu.user"), ("password", "s3cret")];

    // Off by default.
    let html = login_page("csrftoken=c")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("role=\"dialog\""), "{html}");

    // Switched on through the control API, as a test harness would.
    let switched = browser()
        .post(format!("{}/_sim/settings", sim.base_url()))
        .json(&serde_json::json!({"consent_dialog": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(switched.status(), StatusCode::OK);
    assert!(sim.settings().consent_dialog);
    let html = login_page("csrftoken=c")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "role=\"dialog\"",
        ">Allow all cookies</button>",
        ">Decline optional cookies</button>",
        "name=\"username\" aria-label=\"Phone number, username, or email\" autocomplete=\"username\" disabled",
        "<button type=\"submit\" disabled>Log in</button>",
    ] {
        assert!(html.contains(needle), "{needle} missing from {html}");
    }
    // A login posted past the dialog is not taken.
    let refused = submit(&sim, "/accounts/login/", &credentials).await;
    assert_eq!(refused.status(), StatusCode::OK);
    assert!(!set_cookies(&refused).contains_key("sessionid"));
    assert!(refused.text().await.unwrap().contains("role=\"dialog\""));

    for choice in ["all", "essential"] {
        let chosen = submit(&sim, "/accounts/login/", &[("cookie_choice", choice)]).await;
        assert_eq!(chosen.status(), StatusCode::FOUND);
        assert_eq!(location(&chosen), "/accounts/login/");
        assert_eq!(set_cookies(&chosen)["ig_consent"], choice);
    }
    let html = login_page("csrftoken=c; ig_consent=essential")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("role=\"dialog\"") && !html.contains("disabled"),
        "{html}"
    );
    let logged_in = browser()
        .post(format!("{}/accounts/login/", sim.base_url()))
        .header("Cookie", "csrftoken=browsercsrf; ig_consent=essential")
        .form(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(logged_in.status(), StatusCode::FOUND);
    assert!(set_cookies(&logged_in).contains_key("sessionid"));
}
