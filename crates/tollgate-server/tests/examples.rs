//! The sample configurations in `examples/`: each is accepted by `check-config` as it is, the
//! README's blocks are those files, and a file one names that is missing is reported with
//! where it is named and the path it came to.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{check_config, write_config};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_example_configuration_is_accepted_as_it_is() {
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(repository().join("examples")).expect("examples/") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let (ok, stdout, stderr) = check_config(&path);
            assert!(ok, "{}: {stderr}", path.display());
            assert!(stdout.contains(": ok\n"), "{stdout}");
            checked.push(path.file_name().expect("a name").to_owned());
        }
    }
    for name in ["tollgate.toml", "proxy.toml", "redis.toml"] {
        assert!(
            checked.iter().any(|checked| checked == name),
            "{name} checked"
        );
    }
}

/// What `examples/tollgate.toml` (with its `ratelimit.yaml`) puts in force.
#[test]
fn the_full_example_puts_every_front_end_in_force() {
    let (ok, stdout, stderr) = check_config(&repository().join("examples/tollgate.toml"));
    assert!(ok, "{stderr}");
    for expected in [
        "policy login: 5/minute (fixed-window)",
        "policy login-next: 3/minute (fixed-window), shadow",
        "policy paced: 10/second (token-bucket, burst 1, max delay 500ms)",
        "policy export: 100/minute (fixed-window), at most 5 in flight (leases of 60s)",
        "route /api/* -> policy login, shadow policy login-next",
        "route /health exempt",
        "envoy:edge:user: 10/second (token-bucket, burst 20)",
    ] {
        assert!(stdout.contains(expected), "{expected} in {stdout}");
    }
}

/// Every README block after a `<!-- file: PATH -->` marker is that file, byte for byte, so the
/// README shows what the repository holds and `check-config` accepts.
#[test]
fn readme_blocks_are_the_example_files() {
    let readme = std::fs::read_to_string(repository().join("README.md")).expect("README.md");
    let marker = "<!-- file: ";
    let mut files = Vec::new();
    for (at, _) in readme.match_indices(marker) {
        let rest = &readme[at + marker.len()..];
        let (path, rest) = rest
            .split_once(" -->\n```")
            .expect("a fenced block after the marker");
        let (_, body) = rest.split_once('\n').expect("the fence's line");
        let end = body.find("\n```").expect("the block's end");
        let block = &body[..=end];
        let file = std::fs::read_to_string(repository().join(path))
            .unwrap_or_else(|err| panic!("{path}, shown in the README: {err}"));
        assert_eq!(block, file, "the README's block differs from {path}");
        files.push(path.to_owned());
    }
    for shown in ["examples/tollgate.toml", "examples/ratelimit.yaml"] {
        assert!(
            files.iter().any(|file| file == shown),
            "{shown} marked in the README"
        );
    }
}

#[test]
fn a_missing_referenced_file_names_where_it_is_named_and_its_path() {
    let config = write_config(
        "bad.toml",
        "[server]\ngrpc_listen = \"127.0.0.1:0\"\n\n[envoy]\nconfig = \"nope.yaml\"\n",
    );
    let dir = config.parent().expect("a directory");
    // Run from the configuration's directory with a relative path: the error still gives
    // the absolute path the name came to.
    let output = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["check-config", "bad.toml"])
        .current_dir(dir)
        .output()
        .expect("the tollgate binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "bad.toml:5: envoy.config: cannot read {} (\"nope.yaml\", relative to this file's \
         directory): ",
        dir.join("nope.yaml").display()
    );
    assert!(
        stderr.starts_with(&expected),
        "{stderr:?} should start with {expected:?}"
    );
    assert!(stderr.contains("No such file"), "{stderr}");

    // A descriptor file that is there but wrong is that file's mistake, with its line.
    std::fs::write(dir.join("nope.yaml"), "domain: edge\ndescriptors: 3\n").expect("write");
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok);
    assert!(
        stderr.starts_with(&format!("{}:2", dir.join("nope.yaml").display())),
        "{stderr}"
    );
}
