//! The live dashboard of a `tollgate serve` process: its data (`data.rs`: numbers, token,
//! disabled), and the page in a real headless Chromium (`browser.rs`, over the DevTools
//! protocol in `cdp.rs`).

#[path = "../support/mod.rs"]
mod support;

mod browser;
mod cdp;
mod data;

use support::{Tollgate, post, write_config};

/// The admin token of the configurations below.
const TOKEN: &str = "s3cret";

/// A server with `login` (7 a minute), a shadow `trial` (2 a minute) and the admin token,
/// plus `extra` configuration.
fn serve(extra: &str) -> Tollgate {
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_token = "{TOKEN}"
{extra}

[policies.login]
limits = "7/minute"

[policies.trial]
limits = "2/minute"
shadow = true
"#
    );
    let path = write_config("tollgate.toml", &config);
    Tollgate::serve(&["--config", path.to_str().expect("utf-8 path")], &[])
}

/// Checks `key` against `policy` `times` times; the statuses.
fn hit(server: &Tollgate, policy: &str, key: &str, times: usize) -> Vec<u16> {
    let body = serde_json::json!({"policy": policy, "key": key}).to_string();
    (0..times)
        .map(|_| post(server.api(), "/v1/check", &body).status)
        .collect()
}

/// The known traffic the tests send: `login` 7 allowed and 3 denied (all for `mallory`), and
/// `trial` 2 allowed and 3 shadow-denied for `hostile`.
fn send_known_traffic(server: &Tollgate, hostile: &str) {
    let login = hit(server, "login", "mallory", 10);
    assert_eq!(login, [[200; 7].as_slice(), &[429; 3]].concat());
    assert_eq!(hit(server, "trial", hostile, 5), [200; 5]);
}
