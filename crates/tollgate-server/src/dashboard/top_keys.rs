//! [`TopKeys`]: the keys denied most over the last [`MINUTES`] minutes, in bounded memory
//! whatever the number of distinct keys (the Space-Saving sketch, one per minute).

use std::borrow::Cow;
use std::sync::Arc;

/// How many minutes the sketch covers.
pub(crate) const MINUTES: usize = 5;

/// The most (policy, key) pairs each minute's sketch tracks.
pub(crate) const CAPACITY: usize = 64;

/// The most characters of a key kept; a longer one is cut there and marked with `…`.
pub(crate) const MAX_KEY_CHARS: usize = 96;

/// A key denied often, with how often (an upper bound) and how much of that may belong to
/// keys it replaced in the sketch (`error`; `count - error` is a lower bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopKey {
    pub(crate) policy: Arc<str>,
    pub(crate) key: Box<str>,
    pub(crate) count: u64,
    pub(crate) error: u64,
}

/// One minute's Space-Saving sketch: at most [`CAPACITY`] entries. A key not tracked when
/// the sketch is full replaces the least counted one and inherits its count, so a key denied
/// more than `1 / CAPACITY` of the minute's denials is always in it.
#[derive(Debug, Default)]
struct Sketch {
    minute: u64,
    entries: Vec<TopKey>,
}

/// A sketch per minute of the last [`MINUTES`], reused in turn.
#[derive(Debug, Default)]
pub(crate) struct TopKeys {
    sketches: [Sketch; MINUTES],
}

/// `key` as shown: lossy UTF-8, cut at [`MAX_KEY_CHARS`] characters (borrowed when it can be).
fn shown(key: &[u8]) -> Cow<'_, str> {
    let text = String::from_utf8_lossy(key);
    match text.char_indices().nth(MAX_KEY_CHARS) {
        None => text,
        Some((cut, _)) => Cow::Owned(format!("{}…", &text[..cut])),
    }
}

impl TopKeys {
    /// Counts a denial of `key` under `policy` during `minute`.
    pub(crate) fn add(&mut self, minute: u64, policy: &Arc<str>, key: &[u8]) {
        let sketch = &mut self.sketches[minute as usize % MINUTES];
        if sketch.minute != minute {
            sketch.minute = minute;
            sketch.entries.clear();
        }
        let key = shown(key);
        if let Some(entry) = sketch
            .entries
            .iter_mut()
            .find(|entry| *entry.key == *key && *entry.policy == **policy)
        {
            entry.count += 1;
            return;
        }
        let entry = TopKey {
            policy: Arc::clone(policy),
            key: key.into_owned().into_boxed_str(),
            count: 1,
            error: 0,
        };
        if sketch.entries.len() < CAPACITY {
            sketch.entries.push(entry);
        } else if let Some(least) = sketch.entries.iter_mut().min_by_key(|entry| entry.count) {
            let inherited = least.count;
            *least = TopKey {
                count: inherited + 1,
                error: inherited,
                ..entry
            };
        }
    }

    /// The `n` keys denied most over the minutes up to `now` (included), most first.
    pub(crate) fn top(&self, now: u64, n: usize) -> Vec<TopKey> {
        let mut merged: Vec<TopKey> = Vec::new();
        let recent = self
            .sketches
            .iter()
            .filter(|sketch| sketch.minute <= now && now - sketch.minute < MINUTES as u64);
        for entry in recent.flat_map(|sketch| &sketch.entries) {
            match merged
                .iter_mut()
                .find(|seen| seen.key == entry.key && seen.policy == entry.policy)
            {
                Some(seen) => {
                    seen.count += entry.count;
                    seen.error += entry.error;
                }
                None => merged.push(entry.clone()),
            }
        }
        merged.sort_by(|a, b| {
            (b.count.cmp(&a.count))
                .then_with(|| a.key.cmp(&b.key))
                .then_with(|| a.policy.cmp(&b.policy))
        });
        merged.truncate(n);
        merged
    }

    /// The entries kept, over every minute's sketch.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.sketches
            .iter()
            .map(|sketch| sketch.entries.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_exactly_while_the_keys_fit() {
        let mut top = TopKeys::default();
        let login: Arc<str> = Arc::from("login");
        let api: Arc<str> = Arc::from("api");
        for _ in 0..3 {
            top.add(10, &login, b"mallory");
        }
        top.add(11, &login, b"mallory");
        top.add(11, &api, b"mallory");
        top.add(11, &login, b"eve");
        let shown: Vec<_> = top
            .top(11, 10)
            .into_iter()
            .map(|entry| (entry.policy.to_string(), entry.key.to_string(), entry.count))
            .collect();
        assert_eq!(
            shown,
            [
                ("login".to_owned(), "mallory".to_owned(), 4),
                ("login".to_owned(), "eve".to_owned(), 1),
                ("api".to_owned(), "mallory".to_owned(), 1),
            ]
        );
        // Five minutes on, minute 10 has left the window; minute 11 too, a minute later.
        assert_eq!(top.top(15, 10)[0].count, 1);
        assert!(top.top(16, 10).is_empty());
    }

    #[test]
    fn stays_bounded_under_100k_distinct_keys_and_keeps_the_heavy_hitter() {
        let mut top = TopKeys::default();
        let policy: Arc<str> = Arc::from("login");
        for i in 0..100_000u32 {
            top.add(7, &policy, format!("attacker-{i}").as_bytes());
            if i % 20 == 0 {
                top.add(7, &policy, b"heavy");
            }
        }
        assert!(top.len() <= CAPACITY, "{} entries", top.len());
        let best = &top.top(7, 1)[0];
        assert_eq!(&*best.key, "heavy");
        // Space-Saving over-counts by at most `error`: the true count, 5,000, is within.
        assert!(
            best.count >= 5_000 && best.count - best.error <= 5_000,
            "{best:?}"
        );
        // Another minute's sketch is bounded too.
        for i in 0..100_000u32 {
            top.add(8, &policy, format!("other-{i}").as_bytes());
        }
        assert!(top.len() <= 2 * CAPACITY);
    }

    #[test]
    fn long_and_invalid_keys_are_cut_and_replaced() {
        let mut top = TopKeys::default();
        let policy: Arc<str> = Arc::from("p");
        top.add(0, &policy, "é".repeat(10_000).as_bytes());
        top.add(0, &policy, b"\xff<script>");
        let keys: Vec<String> = top.top(0, 10).into_iter().map(|e| e.key.into()).collect();
        assert!(keys.contains(&format!("{}…", "é".repeat(MAX_KEY_CHARS))));
        assert!(keys.contains(&"\u{fffd}<script>".to_owned()));
    }
}
