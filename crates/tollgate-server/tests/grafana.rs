//! The Grafana dashboard in `grafana/tollgate.json`: every query names metrics that a live
//! `tollgate serve` really exports on `/metrics`.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{Tollgate, post, request, write_config};

/// The dashboard, as committed.
const DASHBOARD: &str = include_str!("../../../grafana/tollgate.json");

/// PromQL words that are neither metrics nor functions followed by `(`.
const KEYWORDS: [&str; 11] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
];

/// Aggregation operators, which may take `by (...)` before their parenthesis.
const AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// The index just past the bracket closing the one at `open` (quotes respected).
fn past_closing(chars: &[char], open: usize) -> usize {
    let (opening, closing) = (
        chars[open],
        match chars[open] {
            '{' => '}',
            '[' => ']',
            _ => ')',
        },
    );
    let mut depth = 0;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' => i = past_string(chars, i) - 1,
            c if c == opening => depth += 1,
            c if c == closing => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!(
        "unclosed {opening} in {:?}",
        chars.iter().collect::<String>()
    );
}

/// The index just past the string literal opening at `open`.
fn past_string(chars: &[char], open: usize) -> usize {
    let mut i = open + 1;
    while i < chars.len() && chars[i] != chars[open] {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

/// The metric names a PromQL expression (or a `label_values(metric, label)` variable
/// query) reads: identifiers outside label matchers, ranges, strings, `by (...)` lists,
/// and that are neither keywords nor functions.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let next_non_space = |from: usize| (from..chars.len()).find(|&j| !chars[j].is_whitespace());
    while i < chars.len() {
        let c = chars[i];
        if c == '{' || c == '[' {
            i = past_closing(&chars, i);
        } else if c == '"' || c == '\'' {
            i = past_string(&chars, i);
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = next_non_space(i);
            if KEYWORDS.contains(&word.as_str()) {
                // by (labels), on (labels)...: label names, not metrics.
                if let Some(open) = next.filter(|&j| chars[j] == '(') {
                    i = past_closing(&chars, open);
                }
            } else if word == "label_values" {
                let open = next.expect("label_values(...)");
                let close = past_closing(&chars, open);
                let inside: String = chars[open + 1..close - 1].iter().collect();
                let metric = inside.split(',').next().expect("a metric").trim();
                names.extend(metric_names(metric));
                i = close;
            } else if AGGREGATIONS.contains(&word.as_str()) || next.is_some_and(|j| chars[j] == '(')
            {
                // A function or an aggregation: its arguments are read on.
            } else {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Every PromQL query of the dashboard: targets' `expr`, and variables' `query`.
fn queries(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (name, value) in map {
                match (name.as_str(), value) {
                    ("expr", Value::String(expr)) => found.push(expr.clone()),
                    ("query", Value::String(query)) if query.starts_with("label_values") => {
                        found.push(query.clone())
                    }
                    _ => queries(value, found),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|value| queries(value, found)),
        _ => {}
    }
}

#[test]
fn the_extractor_finds_metrics_and_only_metrics() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (le) (rate(a_bucket{policy=~"$p", x="}"}[$__rate_interval])))"#
        ),
        ["a_bucket"]
    );
    assert_eq!(
        metric_names("sum(rate(a_total[5m])) / on (policy) group_left b + 1e3 * c_count offset 5m"),
        ["a_total", "b", "c_count"]
    );
    assert_eq!(
        metric_names("label_values(tollgate_hits_total, policy)"),
        ["tollgate_hits_total"]
    );
}

#[test]
fn every_query_of_the_grafana_dashboard_names_an_exported_metric() {
    let config = r#"
[server]
listen = "127.0.0.1:0"

[policies.login]
limits = "1/minute"
ban_after = "1/minute"
ban_for = "1 hour"
"#;
    let path = write_config("tollgate.toml", config);
    let server = Tollgate::serve(&["--config", path.to_str().expect("utf-8 path")], &[]);
    for _ in 0..3 {
        post(
            server.api(),
            "/v1/check",
            r#"{"policy": "login", "key": "k"}"#,
        );
    }
    post(
        server.api(),
        "/v1/charge",
        r#"{"policy": "login", "key": "k", "cost": 1}"#,
    );
    let metrics = request(server.api(), "GET", "/metrics", &[], "");
    assert_eq!(metrics.status, 200);
    // Sample names, histogram series (`_bucket`, `_sum`, `_count`) and `_total` included.
    let exported: BTreeSet<&str> = metrics
        .body
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect();
    assert!(
        exported.contains("tollgate_check_duration_seconds_bucket"),
        "{exported:?}"
    );

    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut found = Vec::new();
    queries(&dashboard, &mut found);
    assert!(found.len() >= 20, "{} queries", found.len());
    let mut used = BTreeSet::new();
    for query in &found {
        let names = metric_names(query);
        assert!(!names.is_empty(), "no metric in {query:?}");
        for name in names {
            assert!(
                exported.contains(name.as_str()),
                "{query:?} reads {name}, which /metrics does not export (it exports {exported:?})"
            );
            used.insert(name);
        }
    }
    // Every metric family the server exports has a panel.
    let families: BTreeSet<&str> = exported
        .iter()
        .map(|name| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name)
        })
        .collect();
    for family in families {
        assert!(
            used.iter().any(|name| name.starts_with(family)),
            "no panel shows {family}"
        );
    }
}
