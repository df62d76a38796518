//! ARCHITECTURE.md cannot rot: every source path it names exists, and it names every crate's
//! library root.

use std::path::Path;

/// The paths in `text` that start `crates/` and name a file under a `src/` directory (`.rs`,
/// `.lua`, `.md`), or a directory ending in `/`.
fn source_paths(text: &str) -> Vec<&str> {
    text.match_indices("crates/")
        .map(|(at, _)| {
            let rest = &text[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || "/_-.".contains(c)))
                .unwrap_or(rest.len());
            rest[..end].trim_end_matches('.')
        })
        .filter(|path| path.contains("/src/"))
        .collect()
}

#[test]
fn every_source_path_in_architecture_md_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let paths = source_paths(&text);
    assert!(
        paths.len() > 50,
        "ARCHITECTURE.md names the modules: {paths:?}"
    );
    let missing: Vec<&&str> = paths
        .iter()
        .filter(|path| !root.join(path).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "named in ARCHITECTURE.md but not there: {missing:?}"
    );
    for crate_root in [
        "crates/tollgate/src/limiter/admission.rs",
        "crates/tollgate-redis/src/store.rs",
        "crates/tollgate-tower/src/check/mod.rs",
        "crates/tollgate-server/src/server.rs",
    ] {
        assert!(paths.contains(&crate_root), "{crate_root} named");
    }
}

#[test]
fn source_paths_are_found_in_prose() {
    let text = "see `crates/a/src/b.rs`, then crates/c/src/d/ and crates/e/tests/f.rs.";
    assert_eq!(source_paths(text), ["crates/a/src/b.rs", "crates/c/src/d/"]);
}
