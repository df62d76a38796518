//! The configuration file as written (serde sections that keep each value's place), and the
//! [`Checker`] that turns it into a [`Config`], naming where each mistake is.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tollgate::{DEFAULT_MAX_KEYS, FailureMode};
use tollgate_redis::StorageUri;
use tollgate_tower::{HeaderPolicies, HeaderStyle};
use toml::Spanned;

use crate::config::policy_section::PolicySection;
use crate::config::proxy::ProxySection;
use crate::config::{Config, ConfigError, Connections, DEFAULT_LISTEN, INLINE_POLICY, Overrides};

/// The largest `[server] max_keys`: about 2^30 keys, tens of gigabytes of states.
const MAX_KEYS_LIMIT: u64 = 1 << 30;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    policies: BTreeMap<String, Spanned<PolicySection>>,
    proxy: Option<ProxySection>,
    envoy: Option<EnvoySection>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<Spanned<String>>,
    grpc_listen: Option<Spanned<String>>,
    storage: Option<Spanned<String>>,
    on_storage_error: Option<Spanned<String>>,
    headers: Option<Spanned<String>>,
    admin_token: Option<Spanned<String>>,
    header_timeout: Option<Spanned<String>>,
    body_timeout: Option<Spanned<String>>,
    keepalive_timeout: Option<Spanned<String>>,
    max_connections: Option<Spanned<u64>>,
    max_waiting: Option<Spanned<u64>>,
    max_keys: Option<Spanned<u64>>,
    header_policies: Option<Spanned<String>>,
    headers_include_shadow: Option<Spanned<bool>>,
    watch_config: Option<Spanned<bool>>,
    dashboard: Option<Spanned<bool>>,
    lease: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvoySection {
    config: Spanned<String>,
}

/// Turns the raw sections into a [`Config`], naming where each mistake is.
pub(crate) struct Checker<'a> {
    text: &'a str,
    file: &'a str,
}

/// Where a listen address came from, to say so if two collide.
struct Listener<'a> {
    what: &'static str,
    addr: SocketAddr,
    /// The field, and its place in the file (`None` for a command-line flag).
    field: &'a str,
    span: Option<Range<usize>>,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(text: &'a str, file: &'a str) -> Self {
        Self { text, file }
    }

    /// An error at `span` of the file, in `field`.
    pub(crate) fn error(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl fmt::Display,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: Some(self.line(span.start)),
            field: Some(field.into()),
            message: message.to_string(),
        }
    }

    /// An error in a command-line flag.
    pub(super) fn flag_error(&self, flag: &str, message: impl fmt::Display) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: None,
            field: Some(flag.to_owned()),
            message: message.to_string(),
        }
    }

    pub(crate) fn line(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn toml_error(&self, err: &toml::de::Error) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: err.span().map(|span| self.line(span.start)),
            field: None,
            message: err.message().trim().to_owned(),
        }
    }

    pub(crate) fn check(&self, overrides: &Overrides) -> Result<Config, ConfigError> {
        let raw: FileConfig = toml::from_str(self.text).map_err(|err| self.toml_error(&err))?;
        let server = raw.server;
        // The file's values are checked even where a flag overrides them, so that a file
        // `check-config` refuses is never served.
        let file_listen = server
            .listen
            .as_ref()
            .map(|listen| self.address(listen, "server.listen"))
            .transpose()?;
        let listen = match (overrides.listen, file_listen) {
            (Some(listen), _) | (None, Some(listen)) => listen,
            (None, None) => DEFAULT_LISTEN.parse().expect("a valid default address"),
        };
        let grpc_listen = server
            .grpc_listen
            .as_ref()
            .map(|addr| self.address(addr, "server.grpc_listen"))
            .transpose()?;
        let storage = self
            .storage(&server, overrides)?
            .with_max_keys(self.max_keys(&server.max_keys)?);
        let lease = self.server_lease(&server.lease, &raw.policies, &storage)?;
        let on_storage_error = match &server.on_storage_error {
            Some(mode) => mode
                .get_ref()
                .parse()
                .map_err(|err| self.error(mode.span(), "server.on_storage_error", err))?,
            None => FailureMode::Allow,
        };
        let headers = match &server.headers {
            Some(style) => header_style(style.get_ref()).ok_or_else(|| {
                self.error(
                    style.span(),
                    "server.headers",
                    format!(
                        "unknown header style {:?}; expected ietf, legacy, both or none",
                        style.get_ref()
                    ),
                )
            })?,
            None => HeaderStyle::default(),
        };
        let header_policies = match &server.header_policies {
            Some(policies) => match policies.get_ref().as_str() {
                "all" => HeaderPolicies::All,
                "closest" => HeaderPolicies::Closest,
                other => {
                    return Err(self.error(
                        policies.span(),
                        "server.header_policies",
                        format!("unknown choice {other:?}; expected all or closest"),
                    ));
                }
            },
            None => HeaderPolicies::default(),
        };
        let headers_include_shadow = server
            .headers_include_shadow
            .as_ref()
            .is_some_and(|include| *include.get_ref());
        let watch_config = server
            .watch_config
            .as_ref()
            .is_none_or(|watch| *watch.get_ref());
        let admin_token = match &server.admin_token {
            Some(token) if token.get_ref().is_empty() => {
                return Err(self.error(
                    token.span(),
                    "server.admin_token",
                    "is empty; remove it to disable reset",
                ));
            }
            token => token.as_ref().map(|token| token.get_ref().clone()),
        };
        let defaults = Connections::default();
        let connections = Connections {
            header_timeout: self
                .duration(&server.header_timeout, "server.header_timeout")?
                .unwrap_or(defaults.header_timeout),
            body_timeout: self
                .duration(&server.body_timeout, "server.body_timeout")?
                .unwrap_or(defaults.body_timeout),
            keepalive_timeout: self
                .duration(&server.keepalive_timeout, "server.keepalive_timeout")?
                .unwrap_or(defaults.keepalive_timeout),
            max_connections: match &server.max_connections {
                Some(max) if *max.get_ref() == 0 || *max.get_ref() > 1_000_000 => {
                    return Err(self.error(
                        max.span(),
                        "server.max_connections",
                        "must be between 1 and 1000000",
                    ));
                }
                Some(max) => usize::try_from(*max.get_ref()).unwrap_or(usize::MAX),
                None => defaults.max_connections,
            },
            max_waiting: match &server.max_waiting {
                Some(max) if *max.get_ref() > 1_000_000 => {
                    return Err(self.error(
                        max.span(),
                        "server.max_waiting",
                        "must be at most 1000000",
                    ));
                }
                Some(max) => usize::try_from(*max.get_ref()).unwrap_or(usize::MAX),
                None => defaults.max_waiting,
            },
        };
        let mut policies = BTreeMap::new();
        let mut shadow_policies = BTreeSet::new();
        let mut in_flight = BTreeMap::new();
        for (name, section) in &raw.policies {
            let field = format!("policies.{name}");
            if !valid_policy_name(name) {
                return Err(self.error(
                    section.span(),
                    field,
                    format!("invalid policy name {name:?}: use letters, digits, '_', '-' and '.'"),
                ));
            }
            if name == INLINE_POLICY {
                return Err(self.error(
                    section.span(),
                    field,
                    format!(
                        "the name {INLINE_POLICY:?} is kept for inline policies of the check API; \
                         choose another"
                    ),
                ));
            }
            policies.insert(name.clone(), self.policy(section.get_ref(), &field)?);
            if let Some(limit) = self.in_flight(section.get_ref(), &field)? {
                in_flight.insert(name.clone(), limit);
            }
            if section
                .get_ref()
                .shadow
                .as_ref()
                .is_some_and(|on| *on.get_ref())
            {
                shadow_policies.insert(name.clone());
            }
        }
        match (&server.grpc_listen, &raw.envoy) {
            (Some(addr), None) => {
                return Err(self.error(
                    addr.span(),
                    "server.grpc_listen",
                    "the Envoy rate limit service needs [envoy] config = \"FILE\"",
                ));
            }
            (None, Some(envoy)) => {
                return Err(self.error(
                    envoy.config.span(),
                    "envoy.config",
                    "the Envoy rate limit service needs [server] grpc_listen = \"IP:PORT\"",
                ));
            }
            _ => {}
        }
        let proxy = raw
            .proxy
            .as_ref()
            .map(|proxy| self.proxy(proxy, &policies))
            .transpose()?;

        let mut listeners = vec![Listener {
            what: "the check API",
            addr: listen,
            field: if overrides.listen.is_some() {
                "--listen"
            } else {
                "server.listen"
            },
            span: server
                .listen
                .as_ref()
                .filter(|_| overrides.listen.is_none())
                .map(Spanned::span),
        }];
        if let (Some(addr), Some(raw)) = (grpc_listen, &server.grpc_listen) {
            listeners.push(Listener {
                what: "the Envoy rate limit service",
                addr,
                field: "server.grpc_listen",
                span: Some(raw.span()),
            });
        }
        if let (Some(proxy), Some(raw)) = (&proxy, &raw.proxy) {
            listeners.push(Listener {
                what: "the proxy",
                addr: proxy.listen,
                field: "proxy.listen",
                span: Some(raw.listen.span()),
            });
        }
        self.distinct(&listeners)?;

        Ok(Config {
            listen,
            grpc_listen,
            storage,
            on_storage_error,
            headers,
            header_policies,
            headers_include_shadow,
            watch_config,
            lease,
            admin_token,
            dashboard: server
                .dashboard
                .as_ref()
                .is_none_or(|dashboard| *dashboard.get_ref()),
            connections,
            policies,
            shadow_policies,
            in_flight,
            proxy,
            envoy_config_line: raw
                .envoy
                .as_ref()
                .map(|envoy| self.line(envoy.config.span().start)),
            envoy_config: raw
                .envoy
                .map(|envoy| PathBuf::from(envoy.config.into_inner())),
            envoy: None,
        })
    }

    /// The budget of keys tracked in memory, over all policies: between 1 and
    /// [`MAX_KEYS_LIMIT`], [`DEFAULT_MAX_KEYS`] unless set.
    fn max_keys(&self, value: &Option<Spanned<u64>>) -> Result<usize, ConfigError> {
        match value {
            None => Ok(DEFAULT_MAX_KEYS),
            Some(max) if (1..=MAX_KEYS_LIMIT).contains(max.get_ref()) => {
                Ok(usize::try_from(*max.get_ref()).unwrap_or(usize::MAX))
            }
            Some(max) => Err(self.error(
                max.span(),
                "server.max_keys",
                format!("must be between 1 and {MAX_KEYS_LIMIT}"),
            )),
        }
    }

    /// A duration such as `60s`, `500ms` or `2m`, more than zero and at most an hour.
    pub(crate) fn duration(
        &self,
        value: &Option<Spanned<String>>,
        field: &str,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(value) = value else {
            return Ok(None);
        };
        let text = value.get_ref().trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let parsed = number.parse::<u64>().ok().and_then(|n| match unit {
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            _ => None,
        });
        match parsed {
            Some(duration) if !duration.is_zero() && duration <= Duration::from_secs(3600) => {
                Ok(Some(duration))
            }
            Some(_) => Err(self.error(
                value.span(),
                field,
                format!("{text:?} is out of range; expected more than 0 and at most 1 hour"),
            )),
            None => Err(self.error(
                value.span(),
                field,
                format!(
                    "invalid duration {text:?}; expected a number with ms, s or m, such as \"60s\""
                ),
            )),
        }
    }

    pub(crate) fn address(
        &self,
        addr: &Spanned<String>,
        field: &str,
    ) -> Result<SocketAddr, ConfigError> {
        addr.get_ref().parse().map_err(|_| {
            self.error(
                addr.span(),
                field,
                format!(
                    "invalid address {:?}; expected IP:PORT such as 127.0.0.1:8080",
                    addr.get_ref()
                ),
            )
        })
    }

    /// The storage URI, from the command line or the file (checked even when the command line
    /// overrides it), checked as `serve` will open it.
    fn storage(
        &self,
        server: &ServerSection,
        overrides: &Overrides,
    ) -> Result<StorageUri, ConfigError> {
        let file_storage = server
            .storage
            .as_ref()
            .map(|uri| {
                uri.get_ref()
                    .parse::<StorageUri>()
                    .map_err(|err| self.error(uri.span(), "server.storage", err))
            })
            .transpose()?;
        match (&overrides.storage, file_storage) {
            (Some(uri), _) => uri.parse().map_err(|err| self.flag_error("--storage", err)),
            (None, Some(uri)) => Ok(uri),
            (None, None) => Ok(StorageUri::memory()),
        }
    }

    /// Refuses two listeners on one address (a port of 0 is a fresh port each time).
    fn distinct(&self, listeners: &[Listener<'_>]) -> Result<(), ConfigError> {
        for (i, later) in listeners.iter().enumerate() {
            let Some(earlier) = listeners[..i]
                .iter()
                .find(|earlier| collide(earlier.addr, later.addr))
            else {
                continue;
            };
            let message = format!(
                "{} would listen on {}, where {} listens ({})",
                later.what, later.addr, earlier.what, earlier.field
            );
            return Err(match &later.span {
                Some(span) => self.error(span.clone(), later.field, message),
                None => self.flag_error(later.field, message),
            });
        }
        Ok(())
    }
}

/// Whether listeners on `a` and `b` cannot both be bound: the same port (not 0), and the
/// same address, or an unspecified one that covers the other (`0.0.0.0` covers IPv4, `[::]`
/// every address, as a dual-stack socket does).
fn collide(a: SocketAddr, b: SocketAddr) -> bool {
    let covers =
        |wide: IpAddr, other: IpAddr| wide.is_unspecified() && (wide.is_ipv6() || other.is_ipv4());
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || covers(a.ip(), b.ip()) || covers(b.ip(), a.ip()))
}

/// Whether `name` may name a policy: letters, digits, `_`, `-` and `.`, so that it can never
/// be taken for a name the proxy (`proxy:...`), the Envoy service (`envoy:...`) or inline
/// policies (`inline|...`) count under.
fn valid_policy_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn header_style(name: &str) -> Option<HeaderStyle> {
    Some(match name {
        "ietf" => HeaderStyle::Ietf,
        "legacy" => HeaderStyle::Legacy,
        "both" => HeaderStyle::Both,
        "none" => HeaderStyle::None,
        _ => return None,
    })
}
