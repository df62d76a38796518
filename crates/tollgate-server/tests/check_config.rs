//! `tollgate check-config` and `tollgate serve` agree: a configuration one accepts the other
//! serves, and one refuses what the other refuses, with the same `file:line: field:`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use support::{check_config, free_port, write_config};

/// Runs `tollgate serve FLAGS --config path` until it says it is serving (`Ok`, and it is
/// stopped) or exits (`Err` with what it printed on standard error).
fn serve_outcome(path: &Path, flags: &[&str]) -> Result<(), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("serve")
        .args(flags)
        .arg("--config")
        .arg(path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tollgate binary runs");
    let stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut printed = String::new();
    let mut serving = false;
    for line in stderr.lines() {
        let line = line.expect("read stderr");
        if line.contains("tollgate serving") {
            serving = true;
            break;
        }
        printed.push_str(&line);
        printed.push('\n');
    }
    let _ = child.kill();
    let _ = child.wait();
    if serving { Ok(()) } else { Err(printed) }
}

#[test]
fn check_config_and_serve_agree_on_good_and_bad_configurations() {
    let port = free_port();
    let upstream = format!("http://127.0.0.1:{}", free_port());
    let proxy = |routes: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[policies.api]\nlimits = \"5/minute\"\n\n\
             [proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\n{routes}"
        )
    };
    // (configuration, None if valid or the start of what both say is wrong).
    let cases: Vec<(String, Option<String>)> = vec![
        ("[server]\nlisten = \"127.0.0.1:0\"\n".to_owned(), None),
        (
            proxy("\n[[proxy.routes]]\npath = \"/health\"\nexempt = true\n"),
            None,
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\nstorage = \"mongodb://x\"\n".to_owned(),
            Some(":3: server.storage: invalid storage URI \"mongodb://x\": unknown scheme".to_owned()),
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\nheader_timeout = \"60 sec\"\n".to_owned(),
            Some(":3: server.header_timeout: invalid duration \"60 sec\"".to_owned()),
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\nlease = \"250ms\"\n".to_owned(),
            Some(":3: server.lease: quota leases need a shared storage".to_owned()),
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\nstorage = \"redis://127.0.0.1:1\"\n\
             lease = \"2m\"\n"
                .to_owned(),
            Some(":4: server.lease: lease 120s is out of range: it must be between 1ms and 60s, or off".to_owned()),
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\nstorage = \"redis://127.0.0.1:1\"\n\n\
             [policies.login]\nlimits = \"5/minute\"\nlease = \"of\"\n"
                .to_owned(),
            Some(":7: policies.login.lease: invalid lease \"of\"; expected \"off\" or a duration".to_owned()),
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\nstorage = \"redis://127.0.0.1:1\"\n\n\
             [policies.login]\nlimits = \"5/minute\"\nban_after = \"3/hour\"\nban_for = \"1 hour\"\n\
             lease = \"100ms\"\n"
                .to_owned(),
            Some(":9: policies.login.lease: a policy with ban_after is never leased".to_owned()),
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\nmax_connections = 0\n".to_owned(),
            Some(":3: server.max_connections: must be between 1 and 1000000".to_owned()),
        ),
        (
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[proxy]\nlisten = \"127.0.0.1:{port}\"\n\
                 upstream = \"{upstream}\"\n"
            ),
            Some(format!(
                ":5: proxy.listen: the proxy would listen on 127.0.0.1:{port}, where the check \
                 API listens (server.listen)"
            )),
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/x\"\npolicy = \"api\"\nshadow_policy = \"api\"\n"),
            None,
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/x\"\nshadow_policy = \"api\"\n"),
            None,
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/x\"\nshadow_policy = \"api\"\nexempt = true\n"),
            Some(
                ":13: proxy.routes[0].shadow_policy: an exempt route meets no limit, not even a \
                 shadow one"
                    .to_owned(),
            ),
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/x\"\nshadow_policy = \"nope\"\n"),
            Some(":13: proxy.routes[0].shadow_policy: unknown policy \"nope\"; defined: api".to_owned()),
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/x\"\nmethods = [\"GET\"]\n"),
            Some(
                ":11: proxy.routes[0]: a route needs a policy, a shadow_policy or exempt = true"
                    .to_owned(),
            ),
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[policies.trial]\nlimits = \"1/second\"\n\
             shadow = \"yes\"\n"
                .to_owned(),
            Some(":6: invalid type: string \"yes\", expected a boolean".to_owned()),
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\nheader_policies = \"every\"\n".to_owned(),
            Some(
                ":3: server.header_policies: unknown choice \"every\"; expected all or closest"
                    .to_owned(),
            ),
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/x\"\npolicy = \"api\"\nexempt = true\n"),
            Some(
                ":13: proxy.routes[0].policy: a route is either exempt or limited by a policy, not both"
                    .to_owned(),
            ),
        ),
        (
            proxy(
                "\n[[proxy.routes]]\npath = \"/x\"\nexempt = true\n\n[[proxy.routes]]\n\
                 path = \"/x\"\nmethods = [\"POST\"]\npolicy = \"api\"\n",
            ),
            Some(":15: proxy.routes[1]: \"/x\" is both exempt and limited".to_owned()),
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/files/*/raw\"\npolicy = \"api\"\n"),
            Some(":12: proxy.routes[0].path: invalid path \"/files/*/raw\"".to_owned()),
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/./a\"\npolicy = \"api\"\n"),
            Some(":12: proxy.routes[0].path: invalid path \"/./a\"".to_owned()),
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/q?b\"\npolicy = \"api\"\n"),
            Some(":12: proxy.routes[0].path: invalid path \"/q?b\"".to_owned()),
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/a#b\"\npolicy = \"api\"\n"),
            Some(":12: proxy.routes[0].path: invalid path \"/a#b\"".to_owned()),
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/a b\"\npolicy = \"api\"\n"),
            Some(":12: proxy.routes[0].path: invalid path \"/a b\"".to_owned()),
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/a/../b\"\npolicy = \"api\"\n"),
            Some(":12: proxy.routes[0].path: invalid path \"/a/../b\"".to_owned()),
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/a%2Fb\"\npolicy = \"api\"\n"),
            Some(":12: proxy.routes[0].path: invalid path \"/a%2Fb\"".to_owned()),
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/log%69n\"\npolicy = \"api\"\n"),
            Some(":12: proxy.routes[0].path: invalid path \"/log%69n\"".to_owned()),
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/a%zz\"\npolicy = \"api\"\n"),
            Some(":12: proxy.routes[0].path: invalid path \"/a%zz\"".to_owned()),
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/a/..;/b\"\npolicy = \"api\"\n"),
            Some(":12: proxy.routes[0].path: invalid path \"/a/..;/b\"".to_owned()),
        ),
        (
            proxy(
                "\n[[proxy.routes]]\npath = \"/login\"\npolicy = \"api\"\nignore_case = true\n\
                 ignore_trailing_slash = true\n\n[[proxy.routes]]\npath = \"/static/*\"\n\
                 exempt = true\nignore_case = true\n",
            ),
            None,
        ),
        (
            proxy(
                "\n[[proxy.routes]]\npath = \"/api/*\"\npolicy = \"api\"\n\
                 ignore_trailing_slash = true\n",
            ),
            Some(
                ":14: proxy.routes[0].ignore_trailing_slash: a prefix route already matches \
                 /api and /api/"
                    .to_owned(),
            ),
        ),
        (
            proxy(
                "\n[[proxy.routes]]\npath = \"/login\"\npolicy = \"api\"\nignore_case = true\n\n\
                 [[proxy.routes]]\npath = \"/LOGIN\"\nexempt = true\n",
            ),
            Some(
                ":16: proxy.routes[1]: \"/LOGIN\" and \"/login\" (proxy.routes[0]) match some of \
                 the same paths"
                    .to_owned(),
            ),
        ),
        (
            proxy(
                "\n[[proxy.routes]]\npath = \"/static/admin\"\npolicy = \"api\"\n\n\
                 [[proxy.routes]]\npath = \"/static/*\"\nexempt = true\nignore_case = true\n",
            ),
            Some(
                ":11: proxy.routes[0]: \"/static/admin\" lies under the case-insensitive prefix \
                 \"/static/*\" (proxy.routes[1]); give it ignore_case = true too"
                    .to_owned(),
            ),
        ),
        (
            proxy("\n[[proxy.routes]]\npath = \"/x\"\npolicy = \"nope\"\n"),
            Some(":13: proxy.routes[0].policy: unknown policy \"nope\"; defined: api".to_owned()),
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[proxy]\nlisten = \"127.0.0.1:0\"\n\
             upstream = \"https://example.com\"\n"
                .to_owned(),
            Some(":6: proxy.upstream: invalid upstream \"https://example.com\"".to_owned()),
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[proxy]\nlisten = \"127.0.0.1:0\"\n\
             upstream = \"http://127.0.0.1:9\"\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n"
                .to_owned(),
            Some(":7: proxy.trusted_proxies[1]: invalid trusted proxy \"10.0.0.0/40\"".to_owned()),
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[policies.inline]\nlimits = \"1/second\"\n"
                .to_owned(),
            Some(":4: policies.inline: the name \"inline\" is kept".to_owned()),
        ),
        (
            format!(
                "[server]\nlisten = \"0.0.0.0:{port}\"\n\n[proxy]\nlisten = \"127.0.0.1:{port}\"\n\
                 upstream = \"{upstream}\"\n"
            ),
            Some(format!(
                ":5: proxy.listen: the proxy would listen on 127.0.0.1:{port}, where the check \
                 API listens (server.listen)"
            )),
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[policies.\"proxy:default\"]\nlimits = \"1/second\"\n"
                .to_owned(),
            Some(":4: policies.proxy:default: invalid policy name \"proxy:default\"".to_owned()),
        ),
        (
            proxy(
                "upstream_connect_timeout = \"1s\"\nupstream_timeout = \"30s\"\n\
                 upstream_idle_timeout = \"2m\"\nescaped_slashes = \"decode\"\n",
            ),
            None,
        ),
        (
            proxy("upstream_connect_timeout = \"5 s\"\n"),
            Some(":10: proxy.upstream_connect_timeout: invalid duration \"5 s\"".to_owned()),
        ),
        (
            proxy("upstream_idle_timeout = \"0s\"\n"),
            Some(":10: proxy.upstream_idle_timeout: \"0s\" is out of range".to_owned()),
        ),
        (
            proxy("escaped_slashes = \"keep\"\n"),
            Some(
                ":10: proxy.escaped_slashes: unknown action \"keep\"; expected reject or decode"
                    .to_owned(),
            ),
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\ngrpc_listen = \"127.0.0.1:0\"\n".to_owned(),
            Some(":3: server.grpc_listen: the Envoy rate limit service needs [envoy]".to_owned()),
        ),
    ];
    for (text, wrong) in cases {
        let path = write_config("tollgate.toml", &text);
        let (checked, stdout, stderr) = check_config(&path);
        let served = serve_outcome(&path, &[]);
        match &wrong {
            None => {
                assert!(checked, "check-config refused:\n{text}\n{stderr}");
                assert!(stdout.contains(": ok"), "{stdout}");
                assert!(served.is_ok(), "serve refused:\n{text}\n{served:?}");
            }
            Some(expected) => {
                let expected = format!("{}{expected}", path.display());
                assert!(!checked, "check-config accepted:\n{text}\n{stdout}");
                assert!(!stdout.contains(": ok"), "no ok before an error: {stdout}");
                assert!(
                    stderr.starts_with(&expected),
                    "check-config said {stderr:?}, not {expected:?}"
                );
                let served = served.expect_err("serve refuses it too");
                assert!(
                    served.contains(&expected),
                    "serve said {served:?}, not {expected:?}"
                );
            }
        }
    }
}

/// A flag overrides the file, but a mistake in the file is still one: `serve --listen` does
/// not serve a file that `check-config` refuses.
#[test]
fn flags_do_not_hide_mistakes_in_the_file() {
    for (text, expected) in [
        (
            "[server]\nlisten = \"localhost\"\n",
            ":2: server.listen: invalid address",
        ),
        (
            "[server]\nstorage = \"mongodb://x\"\n",
            ":2: server.storage: invalid storage URI",
        ),
    ] {
        let path = write_config("tollgate.toml", text);
        let (checked, _, stderr) = check_config(&path);
        assert!(!checked && stderr.contains(expected), "{stderr}");
        let output = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--storage",
                "memory://",
                "--config",
            ])
            .arg(&path)
            .output()
            .expect("the tollgate binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "served:\n{text}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}
