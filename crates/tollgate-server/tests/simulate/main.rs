//! `tollgate simulate`, run as the binary: generated logs whose answers a naive model of each
//! strategy computes (plain arithmetic over the timestamps, not the engine), time going
//! backwards, malformed lines, the proxy's routes, and the JSON and SVG reports.

mod models;
mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use models::{Model, decide};

/// A fresh directory for one test.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tollgate-simulate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// `tollgate simulate ARGS` run in `dir`.
pub(crate) fn simulate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("simulate")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("tollgate runs")
}

/// The JSON report of `tollgate simulate --json - ARGS` in `dir`, which must succeed.
pub(crate) fn report(dir: &Path, args: &[&str]) -> Value {
    let output = simulate(dir, &[&["--json", "-"], args].concat());
    assert!(
        output.status.success(),
        "tollgate simulate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON report")
}

/// The report of the limit labelled `label` in the `index`th configuration.
pub(crate) fn limit<'a>(report: &'a Value, index: usize, label: &str) -> &'a Value {
    let config = &report["configs"][index];
    config["policies"]
        .as_array()
        .into_iter()
        .chain(config["routes"].as_array())
        .flatten()
        .find(|limit| limit["label"] == label)
        .unwrap_or_else(|| panic!("no {label:?} in {config}"))
}

/// A deterministic pseudo-random sequence (an LCG).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

const MS: u64 = 1_000_000;
/// 2026-01-01T00:00:00Z in milliseconds.
const EPOCH_MS: u64 = 1_767_225_600_000;

/// `lines` requests from 7 clients, a few hundred ms apart, one in 20 stamped up to 3 s
/// earlier than the latest line: (client, time in ms since the epoch).
fn generated(lines: usize) -> Vec<(String, u64)> {
    let mut random = Lcg(15);
    let mut latest = EPOCH_MS;
    (0..lines)
        .map(|_| {
            let client = format!("203.0.113.{}", random.below(7));
            latest += random.below(700);
            let time = if random.below(20) == 0 {
                latest - random.below(3000)
            } else {
                latest
            };
            (client, time)
        })
        .collect()
}

#[test]
fn every_strategy_matches_a_naive_model() {
    let dir = scratch("strategies");
    std::fs::write(
        dir.join("tollgate.toml"),
        r#"
[policies.fixed]
limits = "5/10 seconds"

[policies.log]
limits = "5/10 seconds"
strategy = "sliding-window"

[policies.counter]
limits = "5/10 seconds"
strategy = "sliding-window-counter"

[policies.bucket]
limits = "5/10 seconds"
strategy = "token-bucket"
burst = 3
"#,
    )
    .expect("written");
    let requests = generated(3000);
    let log: String = requests
        .iter()
        .map(|(client, time)| {
            format!("{{\"ts\": {time}, \"ip\": \"{client}\", \"request\": \"GET / HTTP/1.1\"}}\n")
        })
        .collect();
    std::fs::write(dir.join("access.jsonl"), log).expect("written");
    let report = report(
        &dir,
        &[
            "--config",
            "tollgate.toml",
            "--format",
            "json",
            "--json-field",
            "time=ts,addr=ip",
            "access.jsonl",
        ],
    );
    // The model's clock never goes back either.
    let mut latest = 0;
    let replayed: Vec<(&str, u64)> = requests
        .iter()
        .map(|(client, time)| {
            latest = latest.max(*time * MS);
            (client.as_str(), latest)
        })
        .collect();
    let mut seen = 0;
    let out_of_order = requests
        .iter()
        .filter(|(_, time)| {
            let back = *time < seen;
            seen = seen.max(*time);
            back
        })
        .count() as u64;
    assert!(
        out_of_order > 50,
        "the log goes back in time: {out_of_order}"
    );
    assert_eq!(report["out_of_order"], out_of_order);
    assert_eq!(report["requests"], 3000);
    let window = 10_000 * MS;
    for (name, model) in [
        ("fixed", Model::FixedWindow),
        ("log", Model::SlidingLog),
        ("counter", Model::SlidingCounter),
        ("bucket", Model::TokenBucket { burst: 3 }),
    ] {
        let expected = decide(model, 5, window, &replayed);
        let got = limit(&report, 0, &format!("policy {name}"));
        assert_eq!(got["requests"], 3000, "{name}");
        assert_eq!(got["denied"], expected.denied, "{name}");
        assert!(
            expected.denied > 100,
            "{name} denies some: {}",
            expected.denied
        );
        assert_eq!(got["distinct_keys"], 7, "{name}");
        assert_eq!(got["keys_denied"], expected.keys_denied(), "{name}");
        let top: Vec<(String, u64)> = got["top_denied"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|top| {
                (
                    top["key"].as_str().expect("a key").to_owned(),
                    top["denied"].as_u64().expect("a count"),
                )
            })
            .collect();
        assert_eq!(top, expected.top(10), "{name}");
        let timeline = &got["timeline"];
        let sum = |field: &str| {
            timeline[field]
                .as_array()
                .expect("buckets")
                .iter()
                .map(|n| n.as_u64().expect("a count"))
                .sum::<u64>()
        };
        assert_eq!(
            (sum("requests"), sum("denied")),
            (3000, expected.denied),
            "{name}"
        );
    }
}

#[test]
fn time_going_backwards_is_replayed_at_the_latest_time() {
    let dir = scratch("backwards");
    std::fs::write(
        dir.join("t.toml"),
        "[policies.api]\nlimits = \"2/minute\"\n",
    )
    .expect("written");
    let line = |time: &str| {
        format!("203.0.113.7 - - [{time} +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"\n")
    };
    // 12:00:00, 12:01:30 (a new window from there), 12:00:10 (back: at 12:01:30, allowed,
    // the window's second), 12:02:00 (denied: still the window of 12:01:30).
    let log = [
        line("01/Mar/2026:12:00:00"),
        line("01/Mar/2026:12:01:30"),
        line("01/Mar/2026:12:00:10"),
        line("01/Mar/2026:12:02:00"),
    ]
    .concat();
    std::fs::write(dir.join("access.log"), log).expect("written");
    let report = report(&dir, &["--config", "t.toml", "access.log"]);
    assert_eq!(report["out_of_order"], 1);
    assert_eq!(report["last_time"], "2026-03-01T12:02:00.000Z");
    let api = limit(&report, 0, "policy api");
    assert_eq!(
        (api["requests"].as_u64(), api["denied"].as_u64()),
        (Some(4), Some(1))
    );
    // Had the third line been replayed at its own time, it would have been counted in the
    // first window, and the fourth allowed.
}

#[test]
fn malformed_lines_are_counted_and_listed_unless_strict() {
    let dir = scratch("malformed");
    std::fs::write(
        dir.join("t.toml"),
        "[policies.api]\nlimits = \"100/minute\"\n",
    )
    .expect("written");
    let good =
        "203.0.113.7 - - [01/Mar/2026:12:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"\n";
    let log = [
        good,
        "not a log line\n",
        good,
        "203.0.113.7 - - [01/Mar/2026:12:00:00 +0000] \"GET / HTTP/1.1\" 200\n",
        "203.0.113.7 - - [31/Feb/2026:25:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"\n",
        good,
    ]
    .concat();
    std::fs::write(dir.join("access.log"), log).expect("written");
    let report = report(
        &dir,
        &["--config", "t.toml", "access.log", "--show-malformed", "2"],
    );
    assert_eq!(
        (report["lines"].as_u64(), report["requests"].as_u64()),
        (Some(6), Some(3))
    );
    assert_eq!(report["malformed"], 3);
    let listed: Vec<(String, u64)> = report["malformed_lines"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|m| {
            (
                m["file"].as_str().expect("a file").to_owned(),
                m["line"].as_u64().expect("a line"),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [("access.log".to_owned(), 2), ("access.log".to_owned(), 4)]
    );
    assert_eq!(limit(&report, 0, "policy api")["requests"], 3);

    let text = simulate(&dir, &["--config", "t.toml", "access.log"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(text.status.success());
    assert!(
        stdout.contains("malformed access.log:2: no \" - \" after the address"),
        "{stdout}"
    );
    assert!(
        stdout.contains("malformed access.log:5: invalid time"),
        "{stdout}"
    );

    let strict = simulate(&dir, &["--config", "t.toml", "--strict", "access.log"]);
    assert!(!strict.status.success());
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert!(stderr.contains("access.log:2: "), "{stderr}");
    assert!(strict.stdout.is_empty(), "no report after a strict failure");
}

#[test]
fn configurations_are_compared_side_by_side_and_drawn() {
    let dir = scratch("compare");
    std::fs::write(
        dir.join("strict.toml"),
        "[policies.api]\nlimits = \"2/minute\"\n",
    )
    .expect("written");
    std::fs::write(
        dir.join("loose.toml"),
        "[policies.api]\nlimits = \"10/minute\"\n",
    )
    .expect("written");
    let log: String = (0..6)
        .map(|i| format!("203.0.113.7 - - [01/Mar/2026:12:00:0{i} +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"\n"))
        .collect();
    std::fs::write(dir.join("access.log"), log).expect("written");
    let args = [
        "--config",
        "strict.toml",
        "--config",
        "loose.toml",
        "access.log",
    ];
    let output = simulate(
        &dir,
        &[&args[..], &["--svg", "chart.svg", "--json", "report.json"]].concat(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let strict = text.find("strict.toml  2/minute (fixed-window): 6 requests, 4 denied (66.7%), 1 keys, 1 ever denied; top: 203.0.113.7 (4)");
    let loose = text.find(
        "loose.toml   10/minute (fixed-window): 6 requests, 0 denied (0.0%), 1 keys, 0 ever denied",
    );
    assert!(
        strict.is_some() && loose.is_some() && strict < loose,
        "{text}"
    );

    // The JSON report, whole.
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("written"))
            .expect("JSON");
    for field in [
        "logs",
        "key_field",
        "lines",
        "requests",
        "malformed",
        "malformed_lines",
        "out_of_order",
        "without_key",
        "first_time",
        "last_time",
        "configs",
    ] {
        assert!(report.get(field).is_some(), "{field} in {report}");
    }
    assert_eq!(report["configs"].as_array().map(Vec::len), Some(2));
    assert_eq!(report["configs"][1]["config"], "loose.toml");
    let api = limit(&report, 0, "policy api");
    for field in [
        "policy",
        "limits",
        "shadow",
        "requests",
        "denied",
        "distinct_keys",
        "keys_denied",
        "top_denied",
        "timeline",
    ] {
        assert!(api.get(field).is_some(), "{field} in {api}");
    }
    assert_eq!(
        api["timeline"]["denied"],
        serde_json::json!([0, 0, 1, 1, 1, 1])
    );

    // The drawing parses as XML, with one panel and a line per series.
    let svg = std::fs::read_to_string(dir.join("chart.svg")).expect("written");
    let parsed = Command::new("python3")
        .args(["-c", "import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); print(d.documentElement.tagName, len(d.getElementsByTagName('polyline')), len(d.getElementsByTagName('g')))"])
        .arg(dir.join("chart.svg"))
        .output()
        .expect("python3 is installed (run scripts/test)");
    assert!(
        parsed.status.success(),
        "not well-formed XML: {}\n{svg}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    // One panel: the requests, and the denials under each configuration.
    assert_eq!(String::from_utf8_lossy(&parsed.stdout).trim(), "svg 3 1");
    assert!(
        svg.contains("policy api") && svg.contains("denied under strict.toml"),
        "{svg}"
    );
}

#[test]
fn the_readme_example_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("the README");
    let section = &readme[readme
        .find("## What-if: `tollgate simulate`")
        .expect("the section")..];
    let command = "cargo run --release -p tollgate-server -- simulate ";
    let args = section[section.find(command).expect("the command") + command.len()..]
        .lines()
        .next()
        .expect("a line");
    let output = simulate(&root, &args.split(' ').collect::<Vec<_>>());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Every line of the README's sample output, up to any "...".
    let sample = &section[section.find("```text\n").expect("the output") + 8..];
    for line in sample[..sample.find("```").expect("its end")].lines() {
        let shown = line.split("...").next().unwrap_or(line);
        assert!(stdout.contains(shown), "{shown:?} not in\n{stdout}");
    }
}

#[test]
fn unusable_inputs_are_named() {
    let dir = scratch("unusable");
    std::fs::write(dir.join("t.toml"), "[policies.api]\nlimits = \"5/minit\"\n").expect("written");
    std::fs::write(
        dir.join("ok.toml"),
        "[policies.api]\nlimits = \"5/minute\"\n",
    )
    .expect("written");
    std::fs::write(dir.join("access.log"), "").expect("written");
    for (args, expected) in [
        (
            &["--config", "t.toml", "access.log"][..],
            "t.toml:2: policies.api.limits: invalid rate",
        ),
        (
            &["--config", "ok.toml", "missing.log"],
            "missing.log: cannot read: ",
        ),
        (
            &["--config", "ok.toml", "--replay", "proxy", "access.log"],
            "ok.toml: --replay proxy, but no [proxy] section",
        ),
        (
            &[
                "--config",
                "ok.toml",
                "--json-field",
                "time=ts",
                "access.log",
            ],
            "--json-field is for --format json",
        ),
    ] {
        let output = simulate(&dir, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
    }
    // An empty log: every limit listed, nothing counted.
    let report = report(&dir, &["--config", "ok.toml", "access.log"]);
    assert_eq!(
        (report["lines"].as_u64(), report["first_time"].is_null()),
        (Some(0), true)
    );
    assert_eq!(limit(&report, 0, "policy api")["requests"], 0);
}

#[test]
fn key_figures_past_max_keys_are_lower_bounds() {
    let dir = scratch("max-keys");
    std::fs::write(
        dir.join("t.toml"),
        "[policies.api]\nlimits = \"1/minute\"\n",
    )
    .expect("written");
    let log: String = ["203.0.113.1", "203.0.113.2", "203.0.113.2", "203.0.113.3"]
        .iter()
        .map(|addr| {
            format!(
                "{addr} - - [01/Mar/2026:12:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"\n"
            )
        })
        .collect();
    std::fs::write(dir.join("access.log"), log).expect("written");
    let args = ["--config", "t.toml", "--max-keys", "2", "access.log"];
    let report = report(&dir, &args);
    let api = limit(&report, 0, "policy api");
    // Every request is counted; only two keys are tracked.
    assert_eq!(figures(api), serde_json::json!([4, 1, 2, true]));
    let text = simulate(&dir, &args);
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .contains("4 requests, 1 denied (25.0%), at least 2 keys")
    );
}

/// Requests, denials, distinct keys and whether keys were capped.
fn figures(limit: &Value) -> Value {
    serde_json::json!([
        limit["requests"],
        limit["denied"],
        limit["distinct_keys"],
        limit["keys_capped"]
    ])
}
