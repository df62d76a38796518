//! Reload on a change of the configuration's files, beside SIGHUP: a write in place, a file
//! renamed over the configuration, Kubernetes' ConfigMap symlink swap and a change of the
//! Envoy descriptor file each put the new configuration in force; a broken file keeps the old
//! one; `watch_config = false` turns it off.

mod support;

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Tollgate, post, write_config};

fn config(limit: u32) -> String {
    format!("[server]\nlisten = \"127.0.0.1:0\"\n\n[policies.login]\nlimits = \"{limit}/minute\"\n")
}

/// The limit of the policy `login` in force, as the check API reports it.
fn login_limit(api: SocketAddr) -> Value {
    post(api, "/v1/peek", r#"{"policy": "login", "key": "k"}"#).json()["limit"].clone()
}

/// Waits (at most 10 s) until `login`'s limit is `limit`.
fn wait_for_limit(api: SocketAddr, limit: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while login_limit(api) != json!(limit) {
        assert!(
            Instant::now() < deadline,
            "login's limit is still {} after 10 s, not {limit}",
            login_limit(api)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn serve(path: &Path) -> Tollgate {
    Tollgate::serve(&["--config", path.to_str().expect("utf-8 path")], &[])
}

#[test]
fn a_write_in_place_reloads() {
    let path = write_config("tollgate.toml", &config(1));
    let server = serve(&path);
    assert_eq!(login_limit(server.api()), json!(1));
    std::fs::write(&path, config(2)).expect("rewrite in place");
    wait_for_limit(server.api(), 2);
}

#[test]
fn a_file_renamed_over_the_configuration_reloads() {
    let path = write_config("tollgate.toml", &config(1));
    let server = serve(&path);
    assert_eq!(login_limit(server.api()), json!(1));
    let new = path.with_file_name(".tollgate.toml.swp");
    std::fs::write(&new, config(3)).expect("write the new file");
    std::fs::rename(&new, &path).expect("rename over");
    wait_for_limit(server.api(), 3);
    // And again: the watch follows the new file, not the inode it first saw.
    std::fs::write(&new, config(4)).expect("write the new file");
    std::fs::rename(&new, &path).expect("rename over");
    wait_for_limit(server.api(), 4);
}

/// A ConfigMap volume: `tollgate.toml -> ..data/tollgate.toml`, `..data -> ..<timestamp>`;
/// an update writes a new timestamped directory, points `..data_tmp` at it, renames
/// `..data_tmp` over `..data` and removes the old directory.
#[test]
fn a_kubernetes_configmap_symlink_swap_reloads() {
    let dir = write_config("unused", "")
        .parent()
        .expect("a dir")
        .to_owned();
    let version = |name: &str, limit: u32| {
        std::fs::create_dir(dir.join(name)).expect("a version directory");
        std::fs::write(dir.join(name).join("tollgate.toml"), config(limit)).expect("write");
    };
    version("..2026_12_03_10_00_00.1", 1);
    symlink("..2026_12_03_10_00_00.1", dir.join("..data")).expect("..data");
    symlink("..data/tollgate.toml", dir.join("tollgate.toml")).expect("the file's link");
    let server = serve(&dir.join("tollgate.toml"));
    assert_eq!(login_limit(server.api()), json!(1));

    version("..2026_12_03_10_05_00.2", 5);
    symlink("..2026_12_03_10_05_00.2", dir.join("..data_tmp")).expect("..data_tmp");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap ..data");
    std::fs::remove_dir_all(dir.join("..2026_12_03_10_00_00.1")).expect("remove the old one");
    wait_for_limit(server.api(), 5);
}

#[test]
fn a_broken_file_keeps_the_old_configuration_until_it_is_fixed() {
    let path = write_config("tollgate.toml", &config(1));
    let log = path.with_file_name("tollgate.log");
    let server = Tollgate::serve_logging_to(
        &[
            "--log-format",
            "json",
            "--config",
            path.to_str().expect("utf-8"),
        ],
        &[],
        Stdio::from(File::create(&log).expect("create the log")),
    );
    std::fs::write(&path, "[policies.login]\nlimits = \"5/minit\"\n").expect("break it");
    let deadline = Instant::now() + Duration::from_secs(10);
    let refusal = loop {
        let text = std::fs::read_to_string(&log).expect("read the log");
        if let Some(line) = text
            .lines()
            .find(|line| line.contains("configuration not reloaded"))
        {
            break serde_json::from_str::<Value>(line).expect("a JSON line");
        }
        assert!(Instant::now() < deadline, "no refusal logged:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let trigger = refusal["fields"]["trigger"].as_str().expect("a trigger");
    assert!(trigger.ends_with("tollgate.toml changed"), "{trigger}");
    let reason = refusal["fields"]["reason"].as_str().expect("a reason");
    assert!(reason.contains("invalid rate \"5/minit\""), "{reason}");
    assert_eq!(
        login_limit(server.api()),
        json!(1),
        "the old configuration stays"
    );
    // Fixed, it is put in force at the next look.
    std::fs::write(&path, config(6)).expect("fix it");
    wait_for_limit(server.api(), 6);
}

#[test]
fn a_change_of_the_envoy_descriptor_file_reloads() {
    let path = write_config(
        "tollgate.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\ngrpc_listen = \"127.0.0.1:0\"\n\n\
         [envoy]\nconfig = \"ratelimit.yaml\"\n",
    );
    let yaml = path.with_file_name("ratelimit.yaml");
    std::fs::write(&yaml, "domain: edge\n").expect("write the descriptors");
    let log = path.with_file_name("tollgate.log");
    let _server = Tollgate::serve_logging_to(
        &[
            "--log-format",
            "json",
            "--config",
            path.to_str().expect("utf-8"),
        ],
        &["Envoy rate limit service"],
        Stdio::from(File::create(&log).expect("create the log")),
    );
    std::fs::write(
        &yaml,
        "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: { unit: second, requests_per_unit: 1 }\n",
    )
    .expect("change the descriptors");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).expect("read the log");
        let reloaded = text.lines().any(|line| {
            let line: Value = serde_json::from_str(line).expect("a JSON line");
            line["fields"]["message"] == "configuration reloaded"
                && line["fields"]["trigger"]
                    .as_str()
                    .is_some_and(|trigger| trigger.ends_with("ratelimit.yaml changed"))
        });
        if reloaded {
            break;
        }
        assert!(Instant::now() < deadline, "no reload logged:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn watch_config_false_leaves_changes_to_sighup() {
    let off = |limit: u32| config(limit).replace("[server]\n", "[server]\nwatch_config = false\n");
    let path = write_config("tollgate.toml", &off(1));
    let server = serve(&path);
    std::fs::write(&path, off(7)).expect("rewrite");
    // Three looks' worth: a watched file would have reloaded by now.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(login_limit(server.api()), json!(1));
    server.signal("HUP");
    wait_for_limit(server.api(), 7);
}
