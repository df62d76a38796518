//! `--svg`: requests and denials per second over time, one panel per policy and proxy limit,
//! every configuration's denials drawn over the requests. Plain SVG, written by hand.

use std::fmt::Write as _;

use crate::simulate::report::{LimitReport, Report};
use crate::simulate::time;

const WIDTH: f64 = 900.0;
const PANEL: f64 = 170.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
/// Height of a panel's plot area.
const PLOT: f64 = 110.0;
/// The colours of the configurations' denials, in turn.
const COLOURS: [&str; 6] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// `text` escaped for XML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The most points a series is drawn with: narrower buckets are summed in groups.
const POINTS: usize = 120;

/// Points of one series: (time in ns, per second) at the middle of each group of buckets.
fn series(limit: &LimitReport, counts: &[u64]) -> Vec<(f64, f64)> {
    let timeline = &limit.timeline;
    let group = counts.len().div_ceil(POINTS).max(1);
    let width = timeline.width as f64 * group as f64;
    counts
        .chunks(group)
        .enumerate()
        .map(|(index, chunk)| {
            let middle = timeline.start as f64 + (index as f64 + 0.5) * width;
            (middle, chunk.iter().sum::<u64>() as f64 / (width / 1e9))
        })
        .collect()
}

/// The SVG document of `report`.
pub(crate) fn draw(report: &Report) -> String {
    let mut labels: Vec<&str> = Vec::new();
    for limit in report
        .configs
        .iter()
        .flat_map(|config| config.policies.iter().chain(&config.routes))
    {
        if !labels.contains(&limit.label.as_str()) {
            labels.push(&limit.label);
        }
    }
    let legend = 30.0 + 18.0 * report.configs.len() as f64;
    let height = legend + PANEL * labels.len().max(1) as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let span = match (report.first_time, report.last_time) {
        (Some(first), Some(last)) => format!("{} to {}", time::format(first), time::format(last)),
        _ => "no requests".to_owned(),
    };
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="18" font-weight="bold">tollgate simulate: requests (grey) and denials per second, {}</text>"#,
        escape(&span)
    );
    for (index, config) in report.configs.iter().enumerate() {
        let y = 36.0 + 18.0 * index as f64;
        let colour = COLOURS[index % COLOURS.len()];
        let _ = writeln!(
            svg,
            r#"<rect x="{LEFT}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{y}">denied under {}</text>"#,
            y - 10.0,
            LEFT + 18.0,
            escape(&config.config)
        );
    }
    // One time axis for every panel.
    let start = report.first_time.unwrap_or(0) as f64;
    let end = report
        .configs
        .iter()
        .flat_map(|config| config.policies.iter().chain(&config.routes))
        .map(|limit| {
            let timeline = &limit.timeline;
            timeline.start as f64 + (timeline.requests.len() as f64) * timeline.width as f64
        })
        .fold(start + 1e9, f64::max);
    let plot_width = WIDTH - LEFT - RIGHT;
    let x = |t: f64| LEFT + (t - start) / (end - start) * plot_width;
    for (panel, label) in labels.iter().enumerate() {
        let top = legend + PANEL * panel as f64 + 24.0;
        let limits: Vec<(usize, &LimitReport)> = report
            .configs
            .iter()
            .enumerate()
            .filter_map(|(index, config)| {
                let limit = config.policies.iter().chain(&config.routes);
                Some((
                    index,
                    limit.into_iter().find(|limit| limit.label == *label)?,
                ))
            })
            .collect();
        let requests = limits
            .first()
            .map(|(_, limit)| series(limit, &limit.timeline.requests))
            .unwrap_or_default();
        let peak = limits
            .iter()
            .flat_map(|(_, limit)| series(limit, &limit.timeline.requests))
            .map(|(_, rate)| rate)
            .fold(1.0, f64::max);
        let y = |rate: f64| top + PLOT - rate / peak * PLOT;
        let _ = writeln!(svg, r#"<g class="panel">"#);
        let _ = writeln!(
            svg,
            r#"<text x="{LEFT}" y="{}" font-weight="bold">{}</text>"#,
            top - 8.0,
            escape(label)
        );
        let _ = writeln!(
            svg,
            r##"<rect x="{LEFT}" y="{top}" width="{plot_width}" height="{PLOT}" fill="none" stroke="#999"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{peak:.1}/s</text><text x="{}" y="{}" text-anchor="end">0</text>"#,
            LEFT - 4.0,
            top + 10.0,
            LEFT - 4.0,
            top + PLOT
        );
        let mut line = |points: &[(f64, f64)], colour: &str, class: &str| {
            let points: Vec<String> = points
                .iter()
                .map(|&(t, rate)| format!("{:.1},{:.1}", x(t), y(rate)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline class="{class}" fill="none" stroke="{colour}" stroke-opacity="0.8" stroke-width="1.5" points="{}"/>"#,
                points.join(" ")
            );
        };
        line(&requests, "#aaaaaa", "requests");
        for (index, limit) in &limits {
            line(
                &series(limit, &limit.timeline.denied),
                COLOURS[index % COLOURS.len()],
                "denied",
            );
        }
        let _ = writeln!(svg, "</g>");
    }
    svg.push_str("</svg>\n");
    svg
}
