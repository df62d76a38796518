//! `tollgate simulate`: what would these limits do to my traffic? Access logs replayed
//! through one or more configurations, in virtual time taken from the logs.
//!
//! - `log.rs`: the formats (nginx `combined` and `main`, JSON lines), parsed in place;
//!   `time.rs`: their timestamps.
//! - `replay.rs`: one configuration's replay: the check API's policies by a key field, the
//!   proxy through the server's own routing and limits, over a memory store and a manual
//!   clock; `tally.rs`: what each limit saw.
//! - `report.rs`: the report, as text or JSON; `svg.rs`: requests and denials over time.
//!
//! Time never goes back: a line stamped earlier than one before it is replayed at the latest
//! time seen, and counted (`out_of_order`). Logs are read one after the other, as one
//! stream: give rotated logs oldest first, and merge the logs of several servers by time
//! first (`sort -m`). A malformed line is counted, and the first few listed with their file
//! and line; with `--strict` the first one stops the run.

mod log;
mod replay;
mod report;
mod svg;
mod tally;
mod time;

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::server::{Settings, check};
use log::{Format, JsonFields, Parser};
use replay::{Replay, key_of};
use report::{Malformed, Report};

/// `tollgate simulate`: replays access logs through configurations, as the server would
/// have limited them, and reports per policy and per proxy route what would be denied.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// A configuration to replay the logs through; repeat it to compare several side by side.
    #[arg(long, value_name = "FILE", required = true)]
    config: Vec<PathBuf>,
    /// The access logs, read one after the other (`-` is standard input).
    #[arg(value_name = "ACCESS_LOG", required = true)]
    logs: Vec<PathBuf>,
    /// The log format: nginx's `combined`, nginx's `main` (`combined` then
    /// `"$http_x_forwarded_for"`), or `json` lines.
    #[arg(long, value_enum, default_value = "combined")]
    format: LogFormat,
    /// For `--format json`: which field holds what, as NAME=FIELD pairs separated by commas
    /// (time, addr, user, method, path, request, header:NAME); unset names read nginx's
    /// variable names (time, remote_addr, remote_user, request_method, request_uri, request).
    #[arg(long, value_name = "NAME=FIELD,...")]
    json_field: Vec<String>,
    /// What the check API's policies are keyed by: remote_addr, user or header:NAME. Lines
    /// without it meet no check-API policy (and are counted).
    #[arg(long, value_name = "FIELD", default_value = "remote_addr", value_parser = KeyField::parse)]
    key_field: KeyField,
    /// What to replay: the check API's policies, the proxy's routes, or both.
    #[arg(long, value_enum, default_value = "both")]
    replay: Replayed,
    /// How many of the keys denied most to list per policy and route.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
    /// How many keys each policy and route tracks (for distinct keys, keys denied and the
    /// top denied keys); past it, key figures are lower bounds (marked so).
    #[arg(long, value_name = "N", default_value_t = 1 << 20)]
    max_keys: usize,
    /// How many malformed lines to list (all are counted).
    #[arg(long, value_name = "N", default_value_t = 10)]
    show_malformed: usize,
    /// Stops at the first malformed line, naming its file and line, with a failure status.
    #[arg(long)]
    strict: bool,
    /// Writes the whole report as JSON to FILE (`-`: standard output, instead of the text).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draws requests and denials per policy and route over time as an SVG image.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Combined,
    Main,
    Json,
}

/// `--replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Replayed {
    Both,
    Policies,
    Proxy,
}

/// What the check API's policies are keyed by (`--key-field`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyField {
    RemoteAddr,
    User,
    /// A request header, by lowercase name.
    Header(String),
}

impl KeyField {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "remote_addr" | "addr" => Ok(Self::RemoteAddr),
            "user" | "remote_user" => Ok(Self::User),
            _ => match text.strip_prefix("header:").filter(|name| !name.is_empty()) {
                Some(name) => Ok(Self::Header(name.to_ascii_lowercase())),
                None => Err("expected remote_addr, user or header:NAME".to_owned()),
            },
        }
    }
}

impl std::fmt::Display for KeyField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RemoteAddr => f.write_str("remote_addr"),
            Self::User => f.write_str("user"),
            Self::Header(name) => write!(f, "header:{name}"),
        }
    }
}

/// The longest line read; a longer one is malformed (and skipped to its end).
const MAX_LINE: usize = 1 << 20;

/// Runs `tollgate simulate`: the report on standard output (or as `--json`/`--svg` ask);
/// a failure status for a configuration, a log or an output that cannot be used, or with
/// `--strict` a malformed line.
pub fn simulate(args: SimulateArgs) -> ExitCode {
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tollgate simulate: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &SimulateArgs) -> Result<(), String> {
    let format = match args.format {
        LogFormat::Combined => Format::Combined,
        LogFormat::Main => Format::Main,
        LogFormat::Json => Format::Json(JsonFields::parse(&args.json_field)?),
    };
    if !args.json_field.is_empty() && args.format != LogFormat::Json {
        return Err("--json-field is for --format json".to_owned());
    }
    let configs = args
        .config
        .iter()
        .map(|path| {
            let settings = Settings {
                config: Some(path.clone()),
                ..Settings::default()
            };
            check(&settings).map_err(|err| err.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The check API's policies, the proxy.
    let replayed = match args.replay {
        Replayed::Both => (true, true),
        Replayed::Policies => (true, false),
        Replayed::Proxy => (false, true),
    };
    if let Some((path, _)) = args
        .config
        .iter()
        .zip(&configs)
        .find(|(_, config)| args.replay == Replayed::Proxy && config.proxy.is_none())
    {
        return Err(format!(
            "{}: --replay proxy, but no [proxy] section to replay",
            path.display()
        ));
    }
    let mut report = Report::new(args);
    let mut parser = Parser::new(format);
    let mut replays: Vec<Replay> = Vec::new();
    let mut latest = 0;
    for path in &args.logs {
        let name = path.display().to_string();
        let reader: Box<dyn Read> = if name == "-" {
            Box::new(io::stdin().lock())
        } else {
            Box::new(File::open(path).map_err(|err| format!("{name}: cannot read: {err}"))?)
        };
        let mut number = 0u64;
        let mut failure = Ok(());
        each_line(reader, |line| {
            number += 1;
            report.lines += 1;
            let entry = match line.and_then(|line| parser.parse(line)) {
                Ok(entry) => entry,
                Err(reason) => {
                    if args.strict {
                        failure = Err(format!("{name}:{number}: {reason}"));
                        return false;
                    }
                    report.malformed(Malformed {
                        file: name.clone(),
                        line: number,
                        reason,
                    });
                    return true;
                }
            };
            if replays.is_empty() {
                let start = entry.time;
                report.first_time = Some(start);
                latest = start;
                let made = configs
                    .iter()
                    .map(|config| Replay::new(config, start, args.max_keys, replayed))
                    .collect::<Result<Vec<_>, _>>();
                match made {
                    Ok(made) => replays = made,
                    Err(err) => {
                        failure = Err(err);
                        return false;
                    }
                }
            }
            let time = if entry.time < latest {
                report.out_of_order += 1;
                latest
            } else {
                latest = entry.time;
                entry.time
            };
            report.requests += 1;
            let key = key_of(&entry, &args.key_field);
            report.without_key += u64::from(key.is_none());
            for replay in &mut replays {
                replay.replay(&entry, time, key);
            }
            true
        })
        .map_err(|err| format!("{name}: cannot read: {err}"))?;
        failure?;
    }
    report.last_time = report.first_time.map(|_| latest);
    if replays.is_empty() {
        // No request at all: each configuration's limits, with nothing counted.
        replays = configs
            .iter()
            .map(|config| Replay::new(config, 0, args.max_keys, replayed))
            .collect::<Result<_, _>>()?;
    }
    for ((path, config), replay) in args.config.iter().zip(&configs).zip(&replays) {
        report.add_config(&path.display().to_string(), config, replay);
    }
    report.write(args.json.as_deref(), args.svg.as_deref())
}

/// Calls `line` with each line of `reader` (without its line feed), or the reason it is not
/// one (longer than [`MAX_LINE`]), until it returns `false`.
fn each_line(
    mut reader: impl Read,
    mut line: impl FnMut(Result<&[u8], &'static str>) -> bool,
) -> io::Result<()> {
    let mut buffer = vec![0u8; 4 * MAX_LINE];
    let (mut start, mut end) = (0, 0);
    // Inside a line too long to keep: its rest is skipped.
    let mut skipping = false;
    loop {
        while let Some(at) = memchr::memchr(b'\n', &buffer[start..end]) {
            let whole = &buffer[start..start + at];
            start += at + 1;
            if std::mem::take(&mut skipping) {
                continue;
            }
            let whole = if at > MAX_LINE {
                Err("line longer than 1 MiB")
            } else {
                Ok(whole)
            };
            if !line(whole) {
                return Ok(());
            }
        }
        buffer.copy_within(start..end, 0);
        end -= start;
        start = 0;
        if end >= MAX_LINE {
            if !skipping && !line(Err("line longer than 1 MiB")) {
                return Ok(());
            }
            skipping = true;
            end = 0;
        }
        let read = match reader.read(&mut buffer[end..]) {
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if read == 0 {
            if end > 0 && !skipping {
                line(Ok(&buffer[..end]));
            }
            return Ok(());
        }
        end += read;
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_LINE, each_line};

    /// The lines `each_line` gives for `input`, a too long one as `None`.
    fn lines(input: &[u8]) -> Vec<Option<Vec<u8>>> {
        let mut seen = Vec::new();
        each_line(input, |line| {
            seen.push(line.ok().map(<[u8]>::to_vec));
            true
        })
        .expect("read from memory");
        seen
    }

    #[test]
    fn lines_are_split_and_overlong_ones_skipped() {
        assert_eq!(
            lines(b"a\n\nbc\nd"),
            [
                Some(b"a".to_vec()),
                Some(Vec::new()),
                Some(b"bc".to_vec()),
                Some(b"d".to_vec())
            ]
        );
        let mut input = vec![b'x'; 3 * MAX_LINE];
        input.extend_from_slice(b"\nnext\n");
        assert_eq!(lines(&input), [None, Some(b"next".to_vec())]);
        // Longer than the buffer: skipped across reads.
        let mut input = vec![b'x'; 5 * MAX_LINE];
        input.extend_from_slice(b"\nnext");
        assert_eq!(lines(&input), [None, Some(b"next".to_vec())]);
    }
}
