//! The report of a simulation: what was read, and per configuration, per check-API policy
//! and per proxy limit what would have been denied; as text (configurations side by side
//! under each policy or route) or as JSON (`--json`), and drawn by `svg.rs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::config::Config;
use crate::http::proxy::LimitSite;
use crate::simulate::replay::Replay;
use crate::simulate::tally::{Tally, Timeline};
use crate::simulate::{SimulateArgs, svg, time};

/// The whole report.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) logs: Vec<String>,
    pub(crate) key_field: String,
    /// Lines read, malformed ones included.
    pub(crate) lines: u64,
    /// Lines replayed.
    pub(crate) requests: u64,
    pub(crate) malformed: u64,
    /// The first malformed lines (`--show-malformed`).
    pub(crate) malformed_lines: Vec<Malformed>,
    /// Lines stamped earlier than one before them, replayed at the latest time seen.
    pub(crate) out_of_order: u64,
    /// Lines without the key field, which met no check-API policy.
    pub(crate) without_key: u64,
    #[serde(serialize_with = "instant")]
    pub(crate) first_time: Option<u64>,
    #[serde(serialize_with = "instant")]
    pub(crate) last_time: Option<u64>,
    pub(crate) configs: Vec<ConfigReport>,
    #[serde(skip)]
    show_malformed: usize,
    #[serde(skip)]
    top: usize,
}

/// A malformed line.
#[derive(Debug, Serialize)]
pub(crate) struct Malformed {
    pub(crate) file: String,
    pub(crate) line: u64,
    pub(crate) reason: &'static str,
}

/// One configuration's results.
#[derive(Debug, Serialize)]
pub(crate) struct ConfigReport {
    pub(crate) config: String,
    /// The check API's policies, each met by every line with a key.
    pub(crate) policies: Vec<LimitReport>,
    /// The proxy's limits: each route's policy and shadow policy, and the default policy.
    pub(crate) routes: Vec<LimitReport>,
    pub(crate) proxy: Option<ProxyTotals>,
}

/// What the proxy did with requests no limit decided.
#[derive(Debug, Serialize)]
pub(crate) struct ProxyTotals {
    /// Requests that met no limit (exempt routes; no default policy).
    pub(crate) unlimited: u64,
    /// Requests the path step refused, by status (`400` for a malformed escape).
    pub(crate) refused: BTreeMap<u16, u64>,
    /// Lines without a request line to route (nginx logs `-` for a broken request).
    pub(crate) unroutable: u64,
}

/// What one limit saw.
#[derive(Debug, Serialize)]
pub(crate) struct LimitReport {
    /// `policy NAME`, `route PATH`, `route PATH (shadow)` or `default`: what the text report
    /// lines configurations up by.
    pub(crate) label: String,
    /// The policy's name.
    pub(crate) policy: String,
    /// Its limits: `5/minute (fixed-window)`.
    pub(crate) limits: String,
    /// Counted, never denying: denials are what it would deny.
    pub(crate) shadow: bool,
    /// The route's path, for a route's limit.
    pub(crate) route: Option<String>,
    /// The route's methods (all if empty).
    pub(crate) methods: Vec<String>,
    pub(crate) requests: u64,
    pub(crate) denied: u64,
    pub(crate) distinct_keys: usize,
    pub(crate) keys_denied: usize,
    /// Whether more keys were met than `--max-keys` tracks: the key figures (distinct
    /// keys, keys denied, top denied) are then lower bounds.
    pub(crate) keys_capped: bool,
    pub(crate) top_denied: Vec<TopKey>,
    pub(crate) timeline: Timeline,
}

/// A key denied often.
#[derive(Debug, Serialize)]
pub(crate) struct TopKey {
    pub(crate) key: String,
    pub(crate) denied: u64,
}

/// An instant as RFC 3339.
fn instant<S: serde::Serializer>(nanos: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
    match nanos {
        Some(nanos) => serializer.serialize_str(&time::format(*nanos)),
        None => serializer.serialize_none(),
    }
}

impl Report {
    pub(crate) fn new(args: &SimulateArgs) -> Self {
        Self {
            logs: args.logs.iter().map(|p| p.display().to_string()).collect(),
            key_field: args.key_field.to_string(),
            lines: 0,
            requests: 0,
            malformed: 0,
            malformed_lines: Vec::new(),
            out_of_order: 0,
            without_key: 0,
            first_time: None,
            last_time: None,
            configs: Vec::new(),
            show_malformed: args.show_malformed,
            top: args.top,
        }
    }

    /// Counts a malformed line, and lists it if among the first.
    pub(crate) fn malformed(&mut self, line: Malformed) {
        self.malformed += 1;
        if self.malformed_lines.len() < self.show_malformed {
            self.malformed_lines.push(line);
        }
    }

    /// Adds the results of `replay`, of `config` read from `path`.
    pub(crate) fn add_config(&mut self, path: &str, config: &Config, replay: &Replay) {
        let policies = replay
            .policies
            .iter()
            .map(|(name, handle, tally)| {
                self.limit(
                    format!("policy {name}"),
                    name,
                    handle.policy().to_string(),
                    config.shadow_policies.contains(name),
                    tally,
                )
            })
            .collect();
        let (routes, proxy) = match (&replay.proxy, &config.proxy) {
            (Some(replayed), Some(proxy)) => {
                let routes = replayed
                    .sites
                    .iter()
                    .zip(replayed.tallies())
                    .map(|((site, name), tally)| {
                        let limits = config.policies.get(name).map(ToString::to_string);
                        let marked = config.shadow_policies.contains(name);
                        let (label, route, methods, shadow) = match *site {
                            LimitSite::Default => ("default".to_owned(), None, Vec::new(), marked),
                            LimitSite::Route { index, shadow } => {
                                let route = &proxy.routes[index];
                                let mut label = format!("route {}", route.path);
                                let methods: Vec<String> =
                                    route.methods.iter().map(ToString::to_string).collect();
                                if !methods.is_empty() {
                                    let _ = write!(label, " [{}]", methods.join(","));
                                }
                                if shadow {
                                    label.push_str(" (shadow)");
                                }
                                (label, Some(route.path.clone()), methods, shadow || marked)
                            }
                        };
                        let mut limit =
                            self.limit(label, name, limits.unwrap_or_default(), shadow, &tally);
                        (limit.route, limit.methods) = (route, methods);
                        limit
                    })
                    .collect();
                let totals = ProxyTotals {
                    unlimited: replayed.unlimited,
                    refused: replayed.refused.iter().map(|(k, v)| (*k, *v)).collect(),
                    unroutable: replayed.unroutable,
                };
                (routes, Some(totals))
            }
            _ => (Vec::new(), None),
        };
        self.configs.push(ConfigReport {
            config: path.to_owned(),
            policies,
            routes,
            proxy,
        });
    }

    fn limit(
        &self,
        label: String,
        policy: &str,
        limits: String,
        shadow: bool,
        tally: &Tally,
    ) -> LimitReport {
        LimitReport {
            label,
            policy: policy.to_owned(),
            limits,
            shadow,
            route: None,
            methods: Vec::new(),
            requests: tally.requests,
            denied: tally.denied,
            distinct_keys: tally.distinct_keys(),
            keys_denied: tally.keys_denied(),
            keys_capped: tally.capped,
            top_denied: tally
                .top_denied(self.top)
                .into_iter()
                .map(|(key, denied)| TopKey { key, denied })
                .collect(),
            timeline: tally.timeline.clone(),
        }
    }

    /// Writes the text report to standard output (unless the JSON goes there), the JSON to
    /// `json`, and the drawing to `svg`.
    pub(crate) fn write(&self, json: Option<&Path>, svg: Option<&Path>) -> Result<(), String> {
        let to_stdout = json.is_some_and(|path| path == Path::new("-"));
        if !to_stdout {
            print!("{}", self.text());
        }
        if let Some(path) = json {
            let mut text = serde_json::to_string_pretty(self)
                .map_err(|err| format!("cannot render the JSON report: {err}"))?;
            text.push('\n');
            if to_stdout {
                let _ = std::io::stdout().write_all(text.as_bytes());
            } else {
                std::fs::write(path, text)
                    .map_err(|err| format!("{}: cannot write: {err}", path.display()))?;
            }
        }
        if let Some(path) = svg {
            std::fs::write(path, svg::draw(self))
                .map_err(|err| format!("{}: cannot write: {err}", path.display()))?;
        }
        Ok(())
    }

    /// The text report: what was read, then each policy and route with every
    /// configuration's figures beneath it.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        let span = match (self.first_time, self.last_time) {
            (Some(first), Some(last)) => {
                format!(", {} to {}", time::format(first), time::format(last))
            }
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{} lines: {} requests, {} malformed, {} out of order, {} without {}{span}",
            self.lines,
            self.requests,
            self.malformed,
            self.out_of_order,
            self.without_key,
            self.key_field
        );
        for line in &self.malformed_lines {
            let _ = writeln!(
                out,
                "  malformed {}:{}: {}",
                line.file, line.line, line.reason
            );
        }
        if self.malformed > self.malformed_lines.len() as u64 {
            let _ = writeln!(
                out,
                "  ... and {} more",
                self.malformed - self.malformed_lines.len() as u64
            );
        }
        let width = self
            .configs
            .iter()
            .map(|c| c.config.len())
            .max()
            .unwrap_or(0);
        for (heading, rows) in [
            (
                format!("Check API policies (keyed by {})", self.key_field),
                labels(self.configs.iter().map(|c| &c.policies)),
            ),
            (
                "Proxy limits".to_owned(),
                labels(self.configs.iter().map(|c| &c.routes)),
            ),
        ] {
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{heading}");
            for label in rows {
                let _ = writeln!(out, "  {label}");
                for config in &self.configs {
                    let limit = config
                        .policies
                        .iter()
                        .chain(&config.routes)
                        .find(|limit| limit.label == label);
                    let _ = write!(out, "    {:width$}  ", config.config);
                    let Some(limit) = limit else {
                        let _ = writeln!(out, "-");
                        continue;
                    };
                    let _ = writeln!(out, "{}", figures(limit));
                }
            }
        }
        for config in &self.configs {
            if let Some(proxy) = &config.proxy {
                let refused: Vec<String> = proxy
                    .refused
                    .iter()
                    .map(|(status, count)| format!("{count} answered {status}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "\n{}: proxy: {} requests met no limit, {} lines had no request to route{}",
                    config.config,
                    proxy.unlimited,
                    proxy.unroutable,
                    if refused.is_empty() {
                        String::new()
                    } else {
                        format!(", {} by the path step", refused.join(", "))
                    }
                );
            }
        }
        out
    }
}

/// Every label of `lists`, in the order first met.
fn labels<'a>(lists: impl Iterator<Item = &'a Vec<LimitReport>>) -> Vec<&'a str> {
    let mut labels: Vec<&str> = Vec::new();
    for limit in lists.flatten() {
        if !labels.contains(&limit.label.as_str()) {
            labels.push(&limit.label);
        }
    }
    labels
}

/// One limit's figures on one line.
fn figures(limit: &LimitReport) -> String {
    let share = if limit.requests == 0 {
        0.0
    } else {
        100.0 * limit.denied as f64 / limit.requests as f64
    };
    let mut line = format!(
        "{}{}: {} requests, {} {} ({share:.1}%), {}{} keys, {} ever denied",
        limit.limits,
        if limit.shadow { ", shadow" } else { "" },
        limit.requests,
        limit.denied,
        if limit.shadow {
            "would be denied"
        } else {
            "denied"
        },
        if limit.keys_capped { "at least " } else { "" },
        limit.distinct_keys,
        limit.keys_denied,
    );
    if !limit.top_denied.is_empty() {
        let top: Vec<String> = limit
            .top_denied
            .iter()
            .map(|top| format!("{} ({})", top.key, top.denied))
            .collect();
        let _ = write!(line, "; top: {}", top.join(", "));
    }
    line
}
