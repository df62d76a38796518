//! The descriptor configuration in envoyproxy/ratelimit's YAML format: read, checked where it
//! is written, and turned into a tree that requests are matched against.
//!
//! # How errors find their line
//!
//! serde_yaml_ng marks an error raised inside a visitor with the position and path of the
//! value being visited. So every check runs *inside* the visitor of the value it is about: a
//! unit is checked while its scalar is read, a rate limit once its mapping is read (through
//! [`Checked`]), a duplicate descriptor while the list element is read (through a seed that
//! knows its siblings), a duplicate domain while its document is read. The one check that
//! needs the whole domain, that every `replaces` names a rate limit, reads the file a second
//! time when it fails, with the names known, so that the error points at the bad entry.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use tollgate::{Policy, Rate, Strategy};

use crate::config::ConfigError;

/// The descriptor configuration of Envoy's rate limit service: one or more domains, each a
/// tree of descriptors with rate limits, in the YAML format of envoyproxy/ratelimit.
///
/// A file holds one domain (`domain:` and `descriptors:` at the top), several YAML documents
/// separated by `---` (one domain each), or a list of domains. Every rate limit becomes one
/// tollgate [`Policy`] named `envoy:{domain}:{path}` (see [`EnvoyLimit::policy_name`]).
///
/// Besides envoyproxy/ratelimit's fields, a `rate_limit` may choose a tollgate strategy with
/// `strategy` (`fixed-window`, the default, `sliding-window`, `sliding-window-counter` or
/// `token-bucket`) and, for a token bucket, its size with `burst`. Units are `second`,
/// `minute`, `hour`, `day`, `week` (7 days), `month` (30 days) and `year` (365 days), in any
/// letter case, as envoyproxy/ratelimit reads them.
///
/// Reading is strict: an unknown field, a unit or strategy that does not exist, a rate limit
/// without `unit` or `requests_per_unit` (write `requests_per_unit: 0` to refuse everything),
/// two siblings with the same key and value, two documents with the same domain, and a
/// `replaces` naming no rate limit of its domain are all errors that name the file, the line
/// and the field. A typo never silently disables a limit.
///
/// ```
/// use tollgate_server::envoy::EnvoyConfig;
///
/// let config = EnvoyConfig::from_yaml(
///     r#"
/// domain: edge
/// descriptors:
///   - key: remote_address
///     rate_limit:
///       unit: minute
///       requests_per_unit: 60
///   - key: path
///     value: /login
///     rate_limit:
///       unit: second
///       requests_per_unit: 5
///       strategy: token-bucket
///       burst: 10
/// "#,
///     "ratelimit.yaml",
/// )?;
/// let names: Vec<&str> = config.policies().map(|(name, _)| name).collect();
/// assert_eq!(names, ["envoy:edge:remote_address", "envoy:edge:path=%2Flogin"]);
///
/// let err = EnvoyConfig::from_yaml("domain: edge\ndescriptors:\n  - key: a\n    ratelimit: {}\n", "rl.yaml")
///     .unwrap_err();
/// assert_eq!(err.line(), Some(4));
/// assert!(err.to_string().starts_with("rl.yaml:4: descriptors[0]: unknown field `ratelimit`"));
/// # Ok::<(), tollgate_server::envoy::EnvoyConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    /// The file name errors and listings mention.
    file: String,
    /// Domain names in the order of the file.
    domain_names: Vec<String>,
    /// The descriptor tree of each domain.
    domains: HashMap<String, Level>,
    /// Every rate limit, in the order of the file; the tree's nodes index into it.
    limits: Vec<EnvoyLimit>,
}

impl EnvoyConfig {
    /// Reads the YAML `text` of the file called `file` (the name is only used in errors).
    ///
    /// ```
    /// use tollgate_server::envoy::EnvoyConfig;
    ///
    /// let err = EnvoyConfig::from_yaml(
    ///     "domain: edge\ndescriptors:\n  - key: a\n    rate_limit:\n      unit: minit\n      requests_per_unit: 1\n",
    ///     "ratelimit.yaml",
    /// )
    /// .unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "ratelimit.yaml:5: descriptors[0].rate_limit.unit: unknown unit \"minit\"; \
    ///      expected second, minute, hour, day, week, month or year"
    /// );
    /// assert_eq!(err.field(), Some("descriptors[0].rate_limit.unit"));
    /// ```
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, EnvoyConfigError> {
        let domains = match read_file(text, None) {
            Ok(domains) => domains,
            Err(err) => return Err(EnvoyConfigError::from_yaml(file, &err)),
        };
        let names: Vec<HashSet<String>> = domains.iter().map(RawDomain::limit_names).collect();
        let unresolved = domains
            .iter()
            .zip(&names)
            .find_map(|(domain, names)| domain.unresolved_replace(names));
        if domains.is_empty() {
            return Err(EnvoyConfigError {
                file: file.to_owned(),
                line: None,
                field: None,
                message: "no domain; expected `domain:` and `descriptors:`".to_owned(),
            });
        }
        if let Some((field, name, domain)) = unresolved {
            // Read again with the names known, so that the error points at the entry.
            return Err(match read_file(text, Some(&names)) {
                Err(err) => EnvoyConfigError::from_yaml(file, &err),
                Ok(_) => EnvoyConfigError {
                    file: file.to_owned(),
                    line: None,
                    field: Some(field),
                    message: unknown_replace_message(&name, &domain),
                },
            });
        }
        Ok(Self::build(file, domains))
    }

    /// Reads the file at `path`.
    ///
    /// ```
    /// use tollgate_server::envoy::EnvoyConfig;
    ///
    /// let err = EnvoyConfig::load("/nonexistent/ratelimit.yaml").unwrap_err();
    /// assert!(err.to_string().starts_with("/nonexistent/ratelimit.yaml: cannot read: "));
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self, EnvoyConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_yaml(&text, &file),
            Err(err) => Err(EnvoyConfigError {
                file,
                line: None,
                field: None,
                message: format!("cannot read: {err}"),
            }),
        }
    }

    /// The file name given to [`EnvoyConfig::from_yaml`] or [`EnvoyConfig::load`].
    ///
    /// ```
    /// let config = tollgate_server::envoy::EnvoyConfig::from_yaml("domain: a\n", "rl.yaml")?;
    /// assert_eq!(config.file(), "rl.yaml");
    /// # Ok::<(), tollgate_server::envoy::EnvoyConfigError>(())
    /// ```
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The domains, in the order of the file.
    ///
    /// ```
    /// let config = tollgate_server::envoy::EnvoyConfig::from_yaml(
    ///     "domain: edge\n---\ndomain: internal\n",
    ///     "rl.yaml",
    /// )?;
    /// assert_eq!(config.domains().collect::<Vec<_>>(), ["edge", "internal"]);
    /// # Ok::<(), tollgate_server::envoy::EnvoyConfigError>(())
    /// ```
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.domain_names.iter().map(String::as_str)
    }

    /// Every rate limit of every domain, in the order of the file, including unlimited ones.
    ///
    /// ```
    /// let config = tollgate_server::envoy::EnvoyConfig::from_yaml(
    ///     "domain: edge\ndescriptors:\n  - key: internal\n    rate_limit: { unlimited: true }\n",
    ///     "rl.yaml",
    /// )?;
    /// let limit = &config.limits()[0];
    /// assert!(limit.is_unlimited());
    /// assert_eq!(limit.to_string(), "envoy:edge:internal: unlimited");
    /// # Ok::<(), tollgate_server::envoy::EnvoyConfigError>(())
    /// ```
    pub fn limits(&self) -> &[EnvoyLimit] {
        &self.limits
    }

    /// The policies to apply, by name: every rate limit that is not unlimited. What
    /// `tollgate check-config` prints, and what [`crate::envoy::EnvoyRateLimiter`] installs
    /// in its limiter.
    ///
    /// ```
    /// let config = tollgate_server::envoy::EnvoyConfig::from_yaml(
    ///     "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: { unit: hour, requests_per_unit: 100 }\n",
    ///     "rl.yaml",
    /// )?;
    /// for (name, policy) in config.policies() {
    ///     assert_eq!(format!("{name}: {policy}"), "envoy:edge:user: 100/hour (fixed-window)");
    /// }
    /// # Ok::<(), tollgate_server::envoy::EnvoyConfigError>(())
    /// ```
    pub fn policies(&self) -> impl Iterator<Item = (&str, &Policy)> {
        self.limits
            .iter()
            .filter_map(|limit| Some((limit.policy_name(), limit.policy()?)))
    }

    /// The rate limit of the node that a descriptor's entries lead to in `domain`: at each
    /// level the entry's key with its exact value, else with a value pattern ending in `*`
    /// that the value starts with (the first such in the file), else the key with no value.
    /// `None` when an entry matches nothing, or the node reached has no rate limit.
    pub(crate) fn find<'e>(
        &self,
        domain: &str,
        entries: impl IntoIterator<Item = (&'e str, &'e str)>,
    ) -> Option<&EnvoyLimit> {
        let mut level = self.domains.get(domain)?;
        let mut reached = None;
        for (key, value) in entries {
            let node = level.child(key, value)?;
            level = &node.children;
            reached = Some(node);
        }
        reached?.limit.map(|index| &self.limits[index])
    }

    /// The tree and the limits of checked domains.
    fn build(file: &str, domains: Vec<RawDomain>) -> Self {
        let mut config = Self {
            file: file.to_owned(),
            domain_names: Vec::with_capacity(domains.len()),
            domains: HashMap::with_capacity(domains.len()),
            limits: Vec::new(),
        };
        for domain in domains {
            let mut path = Vec::new();
            let root = build_level(
                &domain.domain.0,
                domain.descriptors.0,
                &mut path,
                "",
                &mut config.limits,
            );
            config.domain_names.push(domain.domain.0.clone());
            config.domains.insert(domain.domain.0, root);
        }
        config
    }
}

/// One rate limit of an [`EnvoyConfig`]: where it is in the descriptor tree, and what it
/// allows.
///
/// ```
/// use tollgate_server::envoy::{EnvoyConfig, Unit};
///
/// let config = EnvoyConfig::from_yaml(
///     r#"
/// domain: edge
/// descriptors:
///   - key: tenant
///     value: acme
///     descriptors:
///       - key: user
///         shadow_mode: true
///         rate_limit:
///           name: per_user
///           unit: minute
///           requests_per_unit: 10
/// "#,
///     "rl.yaml",
/// )?;
/// let limit = &config.limits()[0];
/// assert_eq!(limit.domain(), "edge");
/// assert_eq!(limit.entries().collect::<Vec<_>>(), [("tenant", Some("acme")), ("user", None)]);
/// assert_eq!(limit.policy_name(), "envoy:edge:tenant=acme/user");
/// assert_eq!(limit.field(), "descriptors[0].descriptors[0].rate_limit");
/// assert_eq!(limit.name(), Some("per_user"));
/// assert_eq!((limit.unit(), limit.requests_per_unit()), (Some(Unit::Minute), Some(10)));
/// assert!(limit.shadow_mode());
/// assert_eq!(limit.to_string(), "envoy:edge:tenant=acme/user: 10/minute (fixed-window), shadow mode, name per_user");
/// # Ok::<(), tollgate_server::envoy::EnvoyConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyLimit {
    domain: String,
    /// The descriptor entries leading to this limit: a key, and a value unless any value
    /// matches (a value ending in `*` is a prefix).
    entries: Vec<(String, Option<String>)>,
    /// `envoy:{domain}:{entries}`, unique in a configuration.
    policy_name: String,
    /// Where the rate limit is in the file: `descriptors[0].descriptors[1].rate_limit`.
    field: String,
    name: Option<String>,
    replaces: Vec<String>,
    shadow_mode: bool,
    /// `None` for an unlimited descriptor.
    limited: Option<Limited>,
}

/// What a limit that is not unlimited allows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Limited {
    unit: Unit,
    requests_per_unit: u32,
    policy: Policy,
}

impl EnvoyLimit {
    /// The domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The descriptor entries that lead to this limit, from the top: a key and, unless any
    /// value matches, a value (a value ending in `*` matches the values it prefixes).
    pub fn entries(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.entries
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_deref()))
    }

    /// The name of the tollgate policy: `envoy:{domain}:{entries}`, the entries written
    /// `key` or `key=value` and joined by `/`, with `%`, `/`, `:` and `=` inside the domain,
    /// keys and values percent-encoded (`/login` is `%2Flogin`). Unique in a configuration;
    /// it scopes the counts in the store and labels metrics.
    pub fn policy_name(&self) -> &str {
        &self.policy_name
    }

    /// Where the rate limit is written: `descriptors[0].descriptors[1].rate_limit`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The rate limit's `name`, which other descriptors' `replaces` refer to.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The names of the rate limits this one replaces when both apply to a request.
    pub fn replaces(&self) -> &[String] {
        &self.replaces
    }

    /// Whether the descriptor is in shadow mode: counted, but always reported OK.
    pub fn shadow_mode(&self) -> bool {
        self.shadow_mode
    }

    /// Whether the rate limit is `unlimited: true`: always OK, never counted.
    pub fn is_unlimited(&self) -> bool {
        self.limited.is_none()
    }

    /// The unit, unless unlimited.
    pub fn unit(&self) -> Option<Unit> {
        self.limited.as_ref().map(|limited| limited.unit)
    }

    /// The requests allowed per unit, unless unlimited.
    pub fn requests_per_unit(&self) -> Option<u32> {
        self.limited
            .as_ref()
            .map(|limited| limited.requests_per_unit)
    }

    /// The tollgate policy: `requests_per_unit` per `unit` with the chosen strategy, unless
    /// unlimited.
    pub fn policy(&self) -> Option<&Policy> {
        self.limited.as_ref().map(|limited| &limited.policy)
    }
}

impl fmt::Display for EnvoyLimit {
    /// `envoy:edge:user: 10/minute (fixed-window), shadow mode, name per_user, replaces a, b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.policy_name)?;
        match &self.limited {
            Some(limited) => write!(f, "{}", limited.policy)?,
            None => f.write_str("unlimited")?,
        }
        if self.shadow_mode {
            f.write_str(", shadow mode")?;
        }
        if let Some(name) = &self.name {
            write!(f, ", name {name}")?;
        }
        if !self.replaces.is_empty() {
            write!(f, ", replaces {}", self.replaces.join(", "))?;
        }
        Ok(())
    }
}

/// The unit of a rate limit, as envoyproxy/ratelimit (and Envoy's protocol) name them.
///
/// A week is 7 days, a month 30 days and a year 365 days, as envoyproxy/ratelimit counts
/// them. Windows start at a key's first hit (tollgate's fixed window), not at the turn of the
/// unit on the wall clock.
///
/// ```
/// use tollgate_server::envoy::Unit;
///
/// assert_eq!(Unit::from_name("MINUTE"), Some(Unit::Minute));
/// assert_eq!(Unit::Minute.seconds(), 60);
/// assert_eq!(Unit::Year.to_string(), "year");
/// assert_eq!(Unit::from_name("minit"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// One second.
    Second,
    /// 60 seconds.
    Minute,
    /// 3,600 seconds.
    Hour,
    /// 86,400 seconds.
    Day,
    /// 7 days.
    Week,
    /// 30 days.
    Month,
    /// 365 days.
    Year,
}

impl Unit {
    /// Every unit, shortest first.
    pub const ALL: [Unit; 7] = [
        Unit::Second,
        Unit::Minute,
        Unit::Hour,
        Unit::Day,
        Unit::Week,
        Unit::Month,
        Unit::Year,
    ];

    /// The unit's name in configuration files, in lower case.
    pub const fn name(self) -> &'static str {
        match self {
            Unit::Second => "second",
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
            Unit::Week => "week",
            Unit::Month => "month",
            Unit::Year => "year",
        }
    }

    /// The unit called `name`, in any letter case.
    pub fn from_name(name: &str) -> Option<Unit> {
        Unit::ALL
            .into_iter()
            .find(|unit| unit.name().eq_ignore_ascii_case(name))
    }

    /// The unit's length in seconds.
    pub const fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => 86_400,
            Unit::Week => 7 * 86_400,
            Unit::Month => 30 * 86_400,
            Unit::Year => 365 * 86_400,
        }
    }

    /// The unit's number in Envoy's protocol (`RateLimitResponse.RateLimit.Unit` and
    /// `envoy.type.v3.RateLimitUnit` agree).
    pub(crate) const fn proto(self) -> i32 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 2,
            Unit::Hour => 3,
            Unit::Day => 4,
            Unit::Month => 5,
            Unit::Year => 6,
            Unit::Week => 7,
        }
    }

    /// The unit numbered `number` in Envoy's protocol.
    pub(crate) fn from_proto(number: i32) -> Option<Unit> {
        Unit::ALL.into_iter().find(|unit| unit.proto() == number)
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A descriptor configuration that could not be read: the file, the line and the field where
/// the problem is, and what it is.
///
/// Displays as `file:line: field: message`, leaving out what is not known (a file that cannot
/// be read has no line).
///
/// ```
/// use tollgate_server::envoy::EnvoyConfig;
///
/// let err = EnvoyConfig::from_yaml("domain: edge\ndescriptors:\n  - key: a\n    valeu: b\n", "rl.yaml")
///     .unwrap_err();
/// assert_eq!(err.file(), "rl.yaml");
/// assert_eq!(err.line(), Some(4));
/// assert_eq!(err.field(), Some("descriptors[0]"));
/// assert!(err.message().starts_with("unknown field `valeu`, expected one of"));
/// ```
pub type EnvoyConfigError = ConfigError;

impl EnvoyConfigError {
    /// Splits serde_yaml_ng's `path: message at line L column C` into its parts.
    fn from_yaml(file: &str, err: &serde_yaml_ng::Error) -> Self {
        let mut text = err.to_string();
        let location = err.location();
        if let Some(location) = &location {
            let suffix = format!(" at line {} column {}", location.line(), location.column());
            if text.ends_with(&suffix) {
                text.truncate(text.len() - suffix.len());
            }
        }
        let (field, message) = match text.split_once(": ") {
            // A list at the top reads `.[1].descriptors`; the dot says nothing.
            Some((path, message)) if is_yaml_path(path) => {
                let path = path.strip_prefix('.').unwrap_or(path);
                (Some(path.to_owned()), message)
            }
            _ => (None, text.as_str()),
        };
        Self {
            file: file.to_owned(),
            line: location.map(|location| location.line()),
            field,
            message: message.to_owned(),
        }
    }
}

/// Whether `s` looks like a path serde_yaml_ng writes (`descriptors[0].rate_limit`), rather
/// than the start of a message.
fn is_yaml_path(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']' | '?'))
}

// ---------------------------------------------------------------------------------------------
// The descriptor tree.

/// The choices at one level of the tree, by entry key.
#[derive(Debug, Clone, Default)]
struct Level {
    keys: HashMap<String, KeyChoices>,
}

/// The nodes under one key: by exact value, by value prefix (in the order of the file), and
/// the one for any value.
#[derive(Debug, Clone, Default)]
struct KeyChoices {
    exact: HashMap<String, Node>,
    prefixes: Vec<(String, Node)>,
    any: Option<Box<Node>>,
}

/// One descriptor of the configuration.
#[derive(Debug, Clone, Default)]
struct Node {
    /// Index into [`EnvoyConfig::limits`].
    limit: Option<usize>,
    children: Level,
}

impl Level {
    /// The node an entry leads to: exact value first, then a prefix, then any value.
    fn child(&self, key: &str, value: &str) -> Option<&Node> {
        let choices = self.keys.get(key)?;
        choices
            .exact
            .get(value)
            .or_else(|| {
                choices
                    .prefixes
                    .iter()
                    .find(|(prefix, _)| value.starts_with(prefix.as_str()))
                    .map(|(_, node)| node)
            })
            .or(choices.any.as_deref())
    }
}

/// Builds one level of `domain`'s tree from checked descriptors, appending their limits.
/// `path` holds the entries above, `field` the YAML path of the list's owner.
fn build_level(
    domain: &str,
    descriptors: Vec<RawDescriptor>,
    path: &mut Vec<(String, Option<String>)>,
    field: &str,
    limits: &mut Vec<EnvoyLimit>,
) -> Level {
    let mut level = Level::default();
    for (index, descriptor) in descriptors.into_iter().enumerate() {
        let field = if field.is_empty() {
            format!("descriptors[{index}]")
        } else {
            format!("{field}.descriptors[{index}]")
        };
        let key = descriptor.key.0;
        let value = descriptor.value;
        path.push((key.clone(), value.clone()));
        let limit = descriptor.rate_limit.map(|Checked(spec)| {
            limits.push(EnvoyLimit {
                domain: domain.to_owned(),
                entries: path.clone(),
                policy_name: policy_name(domain, path),
                field: format!("{field}.rate_limit"),
                name: spec.name,
                replaces: spec.replaces,
                shadow_mode: descriptor.shadow_mode,
                limited: spec.limited,
            });
            limits.len() - 1
        });
        let children = build_level(domain, descriptor.descriptors.0, path, &field, limits);
        path.pop();
        let node = Node { limit, children };
        let choices = level.keys.entry(key).or_default();
        match value {
            None => choices.any = Some(Box::new(node)),
            Some(value) => match value.strip_suffix('*') {
                Some(prefix) => choices.prefixes.push((prefix.to_owned(), node)),
                None => {
                    choices.exact.insert(value, node);
                }
            },
        }
    }
    level
}

/// `envoy:{domain}:{key[=value]/...}`, percent-encoded so that distinct paths never share a
/// name.
fn policy_name(domain: &str, path: &[(String, Option<String>)]) -> String {
    let mut name = String::from("envoy:");
    encode_into(&mut name, domain);
    name.push(':');
    for (i, (key, value)) in path.iter().enumerate() {
        if i > 0 {
            name.push('/');
        }
        encode_into(&mut name, key);
        if let Some(value) = value {
            name.push('=');
            encode_into(&mut name, value);
        }
    }
    name
}

/// Appends `text` to `out` with `%`, `/`, `:` and `=` percent-encoded: the separators of
/// policy names and hit keys.
pub(crate) fn encode_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            ':' => out.push_str("%3A"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the YAML.

/// Reads every domain of a file. With `known_names` (the rate limit names of each domain, in
/// order), a `replaces` naming none of its domain's is an error where it is written.
fn read_file(
    text: &str,
    known_names: Option<&[HashSet<String>]>,
) -> Result<Vec<RawDomain>, serde_yaml_ng::Error> {
    let mut reader = FileReader {
        domains: Vec::new(),
        seen: HashMap::new(),
        known_names,
    };
    let result = (|| {
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            DocumentSeed(&mut reader).deserialize(document)?;
        }
        Ok(())
    })();
    KNOWN_NAMES.with(|names| names.borrow_mut().take());
    result.map(|()| reader.domains)
}

thread_local! {
    /// While a file is read a second time, the rate limit names of the domain being read:
    /// a `replaces` entry checks its name against them. Reading is synchronous, so the
    /// domain being read and the entries being checked are on this thread.
    static KNOWN_NAMES: RefCell<Option<HashSet<String>>> = const { RefCell::new(None) };
}

/// What reading a file has found so far.
struct FileReader<'a> {
    domains: Vec<RawDomain>,
    /// Domains read, with where they were (for the duplicate's message).
    seen: HashMap<String, usize>,
    known_names: Option<&'a [HashSet<String>]>,
}

/// One YAML document: a domain, a list of domains, or nothing.
struct DocumentSeed<'r, 'a>(&'r mut FileReader<'a>);

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a domain (a mapping with `domain` and `descriptors`) or a list of domains")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        DomainSeed(self.0).visit_map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(DomainSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(()) // an empty document
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// One domain, checked against the domains read before it.
struct DomainSeed<'r, 'a>(&'r mut FileReader<'a>);

impl<'de> DeserializeSeed<'de> for DomainSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DomainSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a domain (a mapping with `domain` and `descriptors`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let reader = self.0;
        let ordinal = reader.domains.len();
        if let Some(known) = reader.known_names {
            let names = known.get(ordinal).cloned().unwrap_or_default();
            KNOWN_NAMES.with(|cell| *cell.borrow_mut() = Some(names));
        }
        let domain = RawDomain::deserialize(MapAccessDeserializer::new(map))?;
        if let Some(first) = reader.seen.get(&domain.domain.0) {
            return Err(de::Error::custom(format!(
                "duplicate domain {:?}: domain number {} of this file has the same name",
                domain.domain.0,
                first + 1
            )));
        }
        reader.seen.insert(domain.domain.0.clone(), ordinal);
        reader.domains.push(domain);
        Ok(())
    }
}

/// A domain as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    domain: NonEmpty,
    #[serde(default)]
    descriptors: DescriptorList,
}

impl RawDomain {
    /// The names of the domain's rate limits.
    fn limit_names(&self) -> HashSet<String> {
        let mut names = HashSet::new();
        collect_names(&self.descriptors.0, &mut names);
        names
    }

    /// The first `replaces` naming no rate limit of the domain: its field, the name and the
    /// domain.
    fn unresolved_replace(&self, names: &HashSet<String>) -> Option<(String, String, String)> {
        find_unresolved(&self.descriptors.0, names, "").map(|(field, name)| {
            let domain = self.domain.0.clone();
            (field, name, domain)
        })
    }
}

fn collect_names(descriptors: &[RawDescriptor], names: &mut HashSet<String>) {
    for descriptor in descriptors {
        if let Some(name) = descriptor
            .rate_limit
            .as_ref()
            .and_then(|c| c.0.name.clone())
        {
            names.insert(name);
        }
        collect_names(&descriptor.descriptors.0, names);
    }
}

fn find_unresolved(
    descriptors: &[RawDescriptor],
    names: &HashSet<String>,
    field: &str,
) -> Option<(String, String)> {
    descriptors
        .iter()
        .enumerate()
        .find_map(|(index, descriptor)| {
            let field = if field.is_empty() {
                format!("descriptors[{index}]")
            } else {
                format!("{field}.descriptors[{index}]")
            };
            let replaces = descriptor
                .rate_limit
                .as_ref()
                .map_or(&[][..], |c| &c.0.replaces[..]);
            replaces
                .iter()
                .enumerate()
                .find(|(_, name)| !names.contains(*name))
                .map(|(i, name)| {
                    (
                        format!("{field}.rate_limit.replaces[{i}].name"),
                        name.clone(),
                    )
                })
                .or_else(|| find_unresolved(&descriptor.descriptors.0, names, &field))
        })
}

fn unknown_replace_message(name: &str, domain: &str) -> String {
    format!("no rate limit is named {name:?} in domain {domain:?}")
}

/// A list of descriptors, each checked against its siblings.
#[derive(Default)]
struct DescriptorList(Vec<RawDescriptor>);

impl<'de> Deserialize<'de> for DescriptorList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(DescriptorListVisitor)
    }
}

struct DescriptorListVisitor;

impl<'de> Visitor<'de> for DescriptorListVisitor {
    type Value = DescriptorList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of descriptors")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DescriptorList, A::Error> {
        let mut descriptors = Vec::new();
        let mut seen = HashMap::new();
        while let Some(descriptor) = seq.next_element_seed(DescriptorSeed {
            seen: &mut seen,
            index: descriptors.len(),
        })? {
            descriptors.push(descriptor);
        }
        Ok(DescriptorList(descriptors))
    }
}

/// One descriptor of a list, knowing the (key, value) of the siblings before it.
struct DescriptorSeed<'s> {
    seen: &'s mut HashMap<(String, Option<String>), usize>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for DescriptorSeed<'_> {
    type Value = RawDescriptor;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawDescriptor, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DescriptorSeed<'_> {
    type Value = RawDescriptor;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a descriptor (a mapping with `key`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawDescriptor, A::Error> {
        let mut descriptor = RawDescriptor::deserialize(MapAccessDeserializer::new(map))?;
        // An empty value is no value, as in envoyproxy/ratelimit.
        descriptor.value = descriptor.value.filter(|value| !value.is_empty());
        let id = (descriptor.key.0.clone(), descriptor.value.clone());
        if let Some(first) = self.seen.get(&id) {
            let what = match &id.1 {
                Some(value) => format!("key {:?} with value {value:?}", id.0),
                None => format!("key {:?} with no value", id.0),
            };
            return Err(de::Error::custom(format!(
                "duplicate descriptor: {what} is already descriptor {first} of this list"
            )));
        }
        self.seen.insert(id, self.index);
        Ok(descriptor)
    }
}

/// A descriptor as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDescriptor {
    key: NonEmpty,
    #[serde(default)]
    value: Option<String>,
    /// Present means a rate limit, even when empty (`rate_limit:` alone is an error, not
    /// no limit).
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Checked<RawRateLimit>>,
    #[serde(default)]
    descriptors: DescriptorList,
    #[serde(default)]
    shadow_mode: bool,
    /// Accepted for envoyproxy/ratelimit's files; tollgate's metrics are per policy.
    #[serde(default, rename = "detailed_metric")]
    _detailed_metric: bool,
}

/// Reads a field that is there: unlike `Option`'s own reading, a null value is read as the
/// value (an empty mapping, for [`Checked`]), not as `None`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// A rate limit as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    #[serde(default)]
    unit: Option<UnitName>,
    #[serde(default)]
    requests_per_unit: Option<u32>,
    #[serde(default)]
    unlimited: bool,
    #[serde(default)]
    name: Option<NonEmpty>,
    #[serde(default)]
    replaces: Vec<RawReplace>,
    /// tollgate's extension: the strategy.
    #[serde(default)]
    strategy: Option<StrategyName>,
    /// tollgate's extension: a token bucket's size.
    #[serde(default)]
    burst: Option<u64>,
}

/// A checked rate limit.
struct RateLimitSpec {
    name: Option<String>,
    replaces: Vec<String>,
    limited: Option<Limited>,
}

impl Check for RawRateLimit {
    type Checked = RateLimitSpec;

    fn check(self) -> Result<RateLimitSpec, String> {
        let name = self.name.map(|name| name.0);
        let replaces: Vec<String> = self.replaces.into_iter().map(|r| r.name.0).collect();
        if let Some(name) = &name
            && replaces.contains(name)
        {
            return Err(format!("replaces its own name {name:?}"));
        }
        let limited = if self.unlimited {
            let extra: Vec<&str> = [
                ("unit", self.unit.is_some()),
                ("requests_per_unit", self.requests_per_unit.is_some()),
                ("strategy", self.strategy.is_some()),
                ("burst", self.burst.is_some()),
            ]
            .into_iter()
            .filter_map(|(field, present)| present.then_some(field))
            .collect();
            if !extra.is_empty() {
                return Err(format!(
                    "unlimited: true takes no {}; remove {} or unlimited",
                    extra.join(" or "),
                    if extra.len() == 1 { "it" } else { "them" }
                ));
            }
            None
        } else {
            let unit = self
                .unit
                .ok_or("missing field `unit` (second, minute, hour, day, week, month or year), or write unlimited: true")?
                .0;
            let requests_per_unit = self.requests_per_unit.ok_or(
                "missing field `requests_per_unit` (write requests_per_unit: 0 to refuse every request)",
            )?;
            let rate = Rate::new(
                u64::from(requests_per_unit),
                Duration::from_secs(unit.seconds()),
            )
            .map_err(|err| err.to_string())?;
            let strategy = self.strategy.map_or(Strategy::FixedWindow, |s| s.0);
            let mut policy = Policy::new(strategy, rate.into());
            if let Some(burst) = self.burst {
                policy = policy.with_burst(burst).map_err(|err| err.to_string())?;
            }
            Some(Limited {
                unit,
                requests_per_unit,
                policy,
            })
        };
        Ok(RateLimitSpec {
            name,
            replaces,
            limited,
        })
    }
}

/// An entry of `replaces`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplace {
    name: ReplacedName,
}

/// A mapping checked as a whole once read, so that its errors point at the mapping.
struct Checked<T: Check>(T::Checked);

/// A mapping's checks that involve several of its fields.
trait Check {
    /// What the mapping becomes once checked.
    type Checked;

    /// Checks the mapping; the error is the message.
    fn check(self) -> Result<Self::Checked, String>;
}

impl<'de, T: Check + Deserialize<'de>> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(CheckedVisitor(PhantomData))
    }
}

struct CheckedVisitor<T>(PhantomData<T>);

impl<'de, T: Check + Deserialize<'de>> Visitor<'de> for CheckedVisitor<T> {
    type Value = Checked<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Checked<T>, A::Error> {
        let raw = T::deserialize(MapAccessDeserializer::new(map))?;
        raw.check().map(Checked).map_err(de::Error::custom)
    }
}

/// Defines a string newtype read by a visitor (so that its errors point at the scalar)
/// through `$parse`.
macro_rules! scalar {
    ($(#[$doc:meta])* $name:ident($inner:ty), $expecting:literal, $parse:expr) => {
        $(#[$doc])*
        struct $name($inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ScalarVisitor;

                impl Visitor<'_> for ScalarVisitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$name, E> {
                        let parse: fn(&str) -> Result<$inner, String> = $parse;
                        parse(s).map($name).map_err(E::custom)
                    }
                }

                deserializer.deserialize_str(ScalarVisitor)
            }
        }
    };
}

scalar!(
    /// A string that must not be empty.
    NonEmpty(String),
    "a non-empty string",
    |s| {
        if s.is_empty() {
            Err("must not be empty".to_owned())
        } else {
            Ok(s.to_owned())
        }
    }
);

scalar!(
    /// A unit's name.
    UnitName(Unit),
    "a unit (second, minute, hour, day, week, month or year)",
    |s| {
        Unit::from_name(s).ok_or_else(|| {
            format!("unknown unit {s:?}; expected second, minute, hour, day, week, month or year")
        })
    }
);

scalar!(
    /// A strategy's name.
    StrategyName(Strategy),
    "a strategy (fixed-window, sliding-window, sliding-window-counter or token-bucket)",
    |s| s.parse::<Strategy>().map_err(|err| err.to_string())
);

scalar!(
    /// The name in a `replaces` entry: checked against the domain's rate limit names when the
    /// file is read a second time for that purpose.
    ReplacedName(String),
    "the name of a rate limit",
    |s| {
        if s.is_empty() {
            return Err("must not be empty".to_owned());
        }
        KNOWN_NAMES.with(|names| match &*names.borrow() {
            Some(names) if !names.contains(s) => Err(format!(
                "no rate limit of this domain is named {s:?}; replaces must name a rate limit's `name`"
            )),
            _ => Ok(s.to_owned()),
        })
    }
);
