//! [`EnvoyConfig`]: the descriptor configuration as a tree per domain, its rate limits
//! ([`EnvoyLimit`]), and how a request's descriptor finds its limit in it.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use tollgate::Policy;

use crate::config::ConfigError;
use crate::grpc::envoy::unit::Unit;
use crate::grpc::envoy::yaml::{self, Checked, Limited, RawDescriptor, RawDomain};

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
/// use tollgate_server::EnvoyConfig;
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
/// # Ok::<(), tollgate_server::ConfigError>(())
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
    /// use tollgate_server::EnvoyConfig;
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
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, ConfigError> {
        yaml::read(text, file).map(|domains| Self::build(file, domains))
    }

    /// Reads the file at `path`.
    ///
    /// ```
    /// use tollgate_server::EnvoyConfig;
    ///
    /// let err = EnvoyConfig::load("/nonexistent/ratelimit.yaml").unwrap_err();
    /// assert!(err.to_string().starts_with("/nonexistent/ratelimit.yaml: cannot read: "));
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_yaml(&text, &file),
            Err(err) => Err(ConfigError {
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
    /// let config = tollgate_server::EnvoyConfig::from_yaml("domain: a\n", "rl.yaml")?;
    /// assert_eq!(config.file(), "rl.yaml");
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The domains, in the order of the file.
    ///
    /// ```
    /// let config = tollgate_server::EnvoyConfig::from_yaml(
    ///     "domain: edge\n---\ndomain: internal\n",
    ///     "rl.yaml",
    /// )?;
    /// assert_eq!(config.domains().collect::<Vec<_>>(), ["edge", "internal"]);
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.domain_names.iter().map(String::as_str)
    }

    /// Every rate limit of every domain, in the order of the file, including unlimited ones.
    ///
    /// ```
    /// let config = tollgate_server::EnvoyConfig::from_yaml(
    ///     "domain: edge\ndescriptors:\n  - key: internal\n    rate_limit: { unlimited: true }\n",
    ///     "rl.yaml",
    /// )?;
    /// let limit = &config.limits()[0];
    /// assert!(limit.is_unlimited());
    /// assert_eq!(limit.to_string(), "envoy:edge:internal: unlimited");
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub fn limits(&self) -> &[EnvoyLimit] {
        &self.limits
    }

    /// The policies to apply, by name: every rate limit that is not unlimited. What
    /// `tollgate check-config` prints, and what [`crate::EnvoyService`] prepares
    /// in its limiter.
    ///
    /// ```
    /// let config = tollgate_server::EnvoyConfig::from_yaml(
    ///     "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: { unit: hour, requests_per_unit: 100 }\n",
    ///     "rl.yaml",
    /// )?;
    /// for (name, policy) in config.policies() {
    ///     assert_eq!(format!("{name}: {policy}"), "envoy:edge:user: 100/hour (fixed-window)");
    /// }
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub fn policies(&self) -> impl Iterator<Item = (&str, &Policy)> {
        self.limits
            .iter()
            .filter_map(|limit| Some((limit.policy_name(), limit.policy()?)))
    }

    /// The rate limit (by index in [`EnvoyConfig::limits`]) of the node that a
    /// descriptor's entries lead to in `domain`: at each level the entry's key with its exact
    /// value, else with a value pattern ending in `*` that the value starts with (the first
    /// such in the file), else the key with no value. `None` when an entry matches nothing,
    /// or the node reached has no rate limit.
    pub(crate) fn find<'e>(
        &self,
        domain: &str,
        entries: impl IntoIterator<Item = (&'e str, &'e str)>,
    ) -> Option<usize> {
        let mut level = self.domains.get(domain)?;
        let mut reached = None;
        for (key, value) in entries {
            let node = level.child(key, value)?;
            level = &node.children;
            reached = Some(node);
        }
        reached?.limit
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
/// use tollgate_server::{EnvoyConfig, Unit};
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
/// # Ok::<(), tollgate_server::ConfigError>(())
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
    ///
    /// ```
    /// let config = tollgate_server::EnvoyConfig::from_yaml(
    ///     r#"
    /// domain: edge
    /// descriptors:
    ///   - key: user
    ///     rate_limit: { name: per_user, unit: minute, requests_per_unit: 10 }
    ///   - key: plan
    ///     value: premium
    ///     rate_limit:
    ///       unit: minute
    ///       requests_per_unit: 1000
    ///       replaces: [{ name: per_user }]
    /// "#,
    ///     "rl.yaml",
    /// )?;
    /// assert!(config.limits()[0].replaces().is_empty());
    /// assert_eq!(config.limits()[1].replaces(), ["per_user"]);
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub fn replaces(&self) -> &[String] {
        &self.replaces
    }

    /// Whether the descriptor is in shadow mode: counted, but always reported OK.
    pub fn shadow_mode(&self) -> bool {
        self.shadow_mode
    }

    /// Whether the rate limit is `unlimited: true`: always OK, never counted.
    ///
    /// ```
    /// let config = tollgate_server::EnvoyConfig::from_yaml(
    ///     "domain: edge\ndescriptors:\n  - key: internal\n    rate_limit: { unlimited: true }\n  \
    ///      - key: user\n    rate_limit: { unit: minute, requests_per_unit: 10 }\n",
    ///     "rl.yaml",
    /// )?;
    /// let (internal, user) = (&config.limits()[0], &config.limits()[1]);
    /// assert!(internal.is_unlimited() && internal.policy().is_none() && internal.unit().is_none());
    /// assert!(!user.is_unlimited());
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
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
    ///
    /// ```
    /// let config = tollgate_server::EnvoyConfig::from_yaml(
    ///     r#"
    /// domain: edge
    /// descriptors:
    ///   - key: user
    ///     rate_limit: { unit: week, requests_per_unit: 700 }
    ///   - key: path
    ///     rate_limit: { unit: second, requests_per_unit: 5, strategy: token-bucket, burst: 10 }
    /// "#,
    ///     "rl.yaml",
    /// )?;
    /// let policy = |i: usize| config.limits()[i].policy().map(ToString::to_string);
    /// assert_eq!(policy(0).as_deref(), Some("700/7 days (fixed-window)"));
    /// assert_eq!(policy(1).as_deref(), Some("5/second (token-bucket, burst 10)"));
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
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
