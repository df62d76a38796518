//! Reloading when the configuration changes on disk (`[server] watch_config`, on by default),
//! beside `SIGHUP`: the configuration file and every file it names (the Envoy descriptors)
//! are looked at every [`POLL`], and a file whose contents changed and then held still for
//! one more look asks for a reload (the same reload as `SIGHUP`: a bad file is refused and
//! the old configuration stays).
//!
//! Looking rather than subscribing to file events covers every way a file is replaced alike:
//! a write in place, a new file renamed over the old one in the same directory (editors,
//! `mv`), and Kubernetes' ConfigMap volumes, where the file is a symlink through `..data`,
//! itself a symlink swapped to a new directory. Each look resolves the path to the file it
//! reaches now, and compares what it holds (a hash of its contents), read again only when
//! its place, size, modification time or inode differ: a `touch` reloads nothing.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::server::{Settings, stopping};

/// How often the watched files are looked at; a change is acted on once a second look finds
/// the file as the first left it, 1 to 2 looks after it was made.
pub(crate) const POLL: Duration = Duration::from_secs(1);

/// The files `config` was read from, as `settings` name them: the configuration file and the
/// Envoy descriptor file. None without a file or with `watch_config = false`.
pub(crate) fn watched_files(settings: &Settings, config: &Config) -> Vec<PathBuf> {
    match &settings.config {
        Some(file) if config.watch_config => std::iter::once(file.clone())
            .chain(config.envoy_config.clone())
            .collect(),
        _ => Vec::new(),
    }
}

/// A file as last looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Read: the file the path reaches now, its place, size and time, and its contents' hash.
    File {
        real: PathBuf,
        inode: u64,
        len: u64,
        modified: Option<SystemTime>,
        contents: u64,
    },
    /// Not readable (missing, say): why.
    Unreadable(std::io::ErrorKind),
}

impl Seen {
    /// Looks at `path`, reading it again only if it is not as `before` left it.
    fn look(path: &PathBuf, before: Option<&Seen>) -> Seen {
        let stat = std::fs::canonicalize(path)
            .and_then(|real| std::fs::metadata(&real).map(|meta| (real, meta)));
        let (real, meta) = match stat {
            Ok(stat) => stat,
            Err(err) => return Seen::Unreadable(err.kind()),
        };
        let (inode, len, modified) = (meta.ino(), meta.len(), meta.modified().ok());
        if let Some(
            seen @ Seen::File {
                real: was,
                inode: was_inode,
                len: was_len,
                modified: was_modified,
                ..
            },
        ) = before
            && (was, *was_inode, *was_len, *was_modified) == (&real, inode, len, modified)
        {
            return seen.clone();
        }
        match std::fs::read(&real) {
            Ok(bytes) => {
                let mut hasher = DefaultHasher::new();
                hasher.write(&bytes);
                Seen::File {
                    real,
                    inode,
                    len,
                    modified,
                    contents: hasher.finish(),
                }
            }
            Err(err) => Seen::Unreadable(err.kind()),
        }
    }

    /// Whether `self` and `other` hold the same: the same contents, or unreadable alike.
    fn holds_as(&self, other: &Seen) -> bool {
        match (self, other) {
            (Seen::File { contents: a, .. }, Seen::File { contents: b, .. }) => a == b,
            (a, b) => a == b,
        }
    }
}

/// What the watched files held when last looked at.
#[derive(Debug, Default)]
pub(crate) struct Baseline(HashMap<PathBuf, Seen>);

impl Baseline {
    /// Looks at every file of `files` now (file system calls: call it where blocking for a
    /// moment is fine, as when the configuration has just been read).
    pub(crate) fn look(files: &[PathBuf]) -> Self {
        Self::default().again(files)
    }

    /// Looks at every file of `files` again, reading only those not as they were.
    fn again(&self, files: &[PathBuf]) -> Self {
        Self(
            files
                .iter()
                .map(|file| (file.clone(), Seen::look(file, self.0.get(file))))
                .collect(),
        )
    }

    /// The first of `files` that holds something else in `now` than here (a file not known
    /// here starts with what it holds in `now`).
    fn changed<'a>(&self, now: &Baseline, files: &'a [PathBuf]) -> Option<&'a PathBuf> {
        files
            .iter()
            .find(|file| match (self.0.get(*file), now.0.get(*file)) {
                (Some(before), Some(after)) => !before.holds_as(after),
                _ => false,
            })
    }
}

/// Looks at `files` again in a blocking task.
async fn look_again(baseline: Baseline, files: Vec<PathBuf>) -> (Baseline, Baseline) {
    tokio::task::spawn_blocking(move || {
        let now = baseline.again(&files);
        (baseline, now)
    })
    .await
    .unwrap_or_default()
}

/// Watches the files `files` names (updated after each reload), starting from `baseline`
/// (what they held when the configuration was read), until `stop`; sends on `changed` a file
/// that changed and then held still. A reload pending already covers a later change too.
pub(crate) async fn watch_files(
    mut files: watch::Receiver<Vec<PathBuf>>,
    mut baseline: Baseline,
    changed: mpsc::Sender<PathBuf>,
    mut stop: watch::Receiver<bool>,
) {
    let mut watched = files.borrow_and_update().clone();
    // A file seen changing at the last look: reloaded once it holds still.
    let mut settling: Option<PathBuf> = None;
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is now
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            listed = files.changed() => {
                if listed.is_err() {
                    return;
                }
                // A reload named other files: what they hold now is where they start.
                watched = files.borrow_and_update().clone();
                baseline.0.retain(|file, _| watched.contains(file));
                let (_, now) = look_again(baseline, watched.clone()).await;
                baseline = now;
                continue;
            }
            () = stopping(&mut stop) => return,
        }
        let (before, now) = look_again(baseline, watched.clone()).await;
        match (before.changed(&now, &watched), settling.take()) {
            (Some(file), _) => settling = Some(file.clone()),
            (None, Some(file)) => {
                let _ = changed.try_send(file);
            }
            (None, None) => {}
        }
        baseline = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tollgate-watch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        dir
    }

    #[test]
    fn a_touch_is_no_change_and_a_rewrite_of_the_same_size_is() {
        let dir = temp_dir("touch");
        let file = dir.join("tollgate.toml");
        std::fs::write(&file, "a = 1\n").expect("write");
        let first = Seen::look(&file, None);
        let touched = std::fs::File::options()
            .append(true)
            .open(&file)
            .expect("open");
        touched
            .set_modified(SystemTime::now() + Duration::from_secs(5))
            .expect("touch");
        let after_touch = Seen::look(&file, Some(&first));
        assert_ne!(first, after_touch, "the time changed");
        assert!(first.holds_as(&after_touch), "the contents did not");
        std::fs::write(&file, "a = 2\n").expect("rewrite");
        assert!(!after_touch.holds_as(&Seen::look(&file, Some(&after_touch))));
        std::fs::remove_file(&file).expect("remove");
        let gone = Seen::look(&file, None);
        assert_eq!(gone, Seen::Unreadable(std::io::ErrorKind::NotFound));
        assert!(gone.holds_as(&Seen::look(&file, Some(&gone))));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
