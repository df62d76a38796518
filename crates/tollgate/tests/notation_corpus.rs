//! The notation parser against the Python `limits` library (what Flask-Limiter parses with):
//! `notation/limits_corpus.jsonl` records, for a few thousand strings, what `limits.parse_many`
//! made of each (regenerate it with `python3 notation/limits_corpus.py`).
//!
//! Every string the library accepts must parse to the same amounts and windows, except those
//! whose numbers are outside tollgate's bounds (an amount above `MAX_AMOUNT`, a window above
//! `MAX_WINDOW_SECS`), which tollgate rejects as documented; every string it rejects is
//! rejected here too.

use serde_json::Value;
use tollgate::{MAX_AMOUNT, MAX_WINDOW_SECS, Rates};

#[test]
fn parses_exactly_what_python_limits_parses() {
    let corpus = include_str!("notation/limits_corpus.jsonl");
    let mut lines = corpus.lines();
    let header: Value = serde_json::from_str(lines.next().expect("header")).expect("json");
    assert!(header["limits_version"].is_string(), "{header}");
    let (mut accepted, mut rejected, mut too_large) = (0, 0, 0);
    for line in lines {
        let entry: Value = serde_json::from_str(line).expect("json line");
        let input = entry["input"].as_str().expect("input string");
        let ours = input.parse::<Rates>();
        match &entry["limits"] {
            Value::Null => {
                rejected += 1;
                assert!(
                    ours.is_err(),
                    "{input:?} is rejected by limits, parsed as {ours:?}"
                );
            }
            Value::Array(items) => {
                let expected: Option<Vec<(u64, u64)>> = items
                    .iter()
                    .map(|item| {
                        // Exact digits: the corpus holds numbers beyond u64 on purpose.
                        let amount = item[0].to_string().parse::<u64>().ok()?;
                        let secs = item[1].to_string().parse::<u64>().ok()?;
                        (amount <= MAX_AMOUNT && secs <= MAX_WINDOW_SECS).then_some((amount, secs))
                    })
                    .collect();
                match expected {
                    Some(expected) => {
                        accepted += 1;
                        let rates = ours.unwrap_or_else(|e| panic!("{input:?}: {e}"));
                        let got: Vec<(u64, u64)> = rates
                            .iter()
                            .map(|r| (r.amount(), r.window().as_secs()))
                            .collect();
                        assert_eq!(got, expected, "{input:?}");
                        assert_eq!(rates.to_string().parse::<Rates>().as_ref(), Ok(&rates));
                    }
                    None => {
                        too_large += 1;
                        let err = ours.expect_err(input).to_string();
                        assert!(
                            err.contains("is above the maximum 1000000000000")
                                || err.contains("longer than the maximum, 100 years"),
                            "{input:?}: {err}"
                        );
                    }
                }
            }
            other => panic!("unexpected limits value {other}"),
        }
    }
    // The corpus exercises all three outcomes in earnest.
    assert!(
        accepted > 1000 && rejected > 1000 && too_large > 100,
        "{accepted} accepted, {rejected} rejected, {too_large} too large"
    );
}
