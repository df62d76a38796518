//! The dashboard in a real headless Chromium: the numbers it shows are those sent, it
//! updates itself, an attacker's key is shown as text and never runs, and nothing errs.

use serde_json::{Value, json};

use crate::cdp::Browser;
use crate::{hit, send_known_traffic, serve};

/// A key that would run script if the page rendered keys as markup.
const HOSTILE: &str = r#"<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>"#;

/// What the page shows: each policy's totals, the top keys' rows, the storage badge and the
/// configuration's rows; and whether the hostile key ran.
const READ_PAGE: &str = r##"JSON.stringify({
  policies: Object.fromEntries([...document.querySelectorAll("[data-policy]")].map((card) => [
    card.dataset.policy,
    ["allowed", "denied", "shadow-denied"].map((name) => card.querySelector(`.${name} b`).textContent),
  ])),
  charts: document.querySelectorAll("svg.chart polyline").length,
  top: [...document.querySelectorAll("#top-keys tr")].map((row) => [...row.cells].map((cell) => cell.textContent)),
  state: document.getElementById("state").textContent,
  config: [...document.querySelectorAll("#config tr")].map((row) => [...row.cells].map((cell) => cell.textContent)),
  images: document.querySelectorAll("#top-keys img, #top-keys script").length,
  pwned: window.__pwned === undefined ? null : window.__pwned,
})"##;

async fn read_page(browser: &mut Browser) -> Value {
    let text = browser.evaluate(READ_PAGE).await;
    serde_json::from_str(text.as_str().expect("a string")).expect("JSON")
}

#[tokio::test(flavor = "current_thread")]
async fn the_page_shows_what_was_sent_updates_itself_and_runs_no_key() {
    let server = serve("");
    send_known_traffic(&server, HOSTILE);
    let mut browser = Browser::start(1280, 900).await;
    // The token once in the address, then the cookie for the page and its data.
    browser
        .navigate(&format!("http://{}/dashboard?token=s3cret", server.api()))
        .await;
    browser
        .wait_for(r#"Number(document.body.dataset.updates || 0) >= 1"#)
        .await;
    let url = browser.evaluate("location.href").await;
    assert_eq!(url, json!(format!("http://{}/dashboard", server.api())));
    let page = read_page(&mut browser).await;
    assert_eq!(
        page["policies"],
        json!({"login": ["7", "3", "0"], "trial": ["2", "0", "3"]})
    );
    assert_eq!(page["charts"], 6, "three series for each of two policies");
    assert_eq!(
        page["top"],
        json!([["trial", HOSTILE, "3"], ["login", "mallory", "3"]]),
        "the hostile key shown as text"
    );
    assert_eq!(page["images"], 0);
    assert_eq!(page["pwned"], Value::Null, "the hostile key ran");
    assert_eq!(page["state"], "storage ok");
    assert_eq!(
        page["config"],
        json!([
            ["login", "7/minute (fixed-window)", "enforced"],
            ["trial", "2/minute (fixed-window)", "shadow"]
        ])
    );

    // More denials: the page shows them at its next poll, without a reload.
    assert_eq!(hit(&server, "login", "mallory", 2), [429, 429]);
    browser
        .wait_for(
            r#"document.querySelector('[data-policy="login"] .denied b').textContent === "5""#,
        )
        .await;
    let page = read_page(&mut browser).await;
    assert_eq!(page["top"][0], json!(["login", "mallory", "5"]));

    if let Ok(path) = std::env::var("TOLLGATE_SCREENSHOT") {
        let png = browser.screenshot().await;
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(&path, png).unwrap_or_else(|err| panic!("write {path}: {err}"));
    }
    browser.evaluate("1").await; // the last events in
    assert!(
        browser.errors.is_empty(),
        "the page erred: {:?}",
        browser.errors
    );
}

#[tokio::test(flavor = "current_thread")]
async fn without_the_token_the_page_says_so_and_shows_nothing() {
    let server = serve("");
    send_known_traffic(&server, "eve");
    let mut browser = Browser::start(800, 600).await;
    browser
        .navigate(&format!("http://{}/dashboard", server.api()))
        .await;
    let body = browser.evaluate("document.body.innerText").await;
    let body = body.as_str().expect("text");
    assert!(
        body.contains("the dashboard needs the admin token"),
        "{body}"
    );
    assert!(!body.contains("mallory"), "{body}");
}
