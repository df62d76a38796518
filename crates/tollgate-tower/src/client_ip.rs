//! Who the client is: the peer address, or an address from a proxy header when the peer is a
//! trusted proxy.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap, HeaderName};
use ipnet::IpNet;

/// The client's address as the rate limiter resolved it, inserted into the request's
/// extensions for the handlers and layers behind it.
///
/// ```
/// use axum::{Extension, Router, routing::get};
/// use tollgate_tower::ClientIp;
///
/// async fn whoami(Extension(ClientIp(ip)): Extension<ClientIp>) -> String {
///     ip.to_string()
/// }
/// let app: Router = Router::new().route("/whoami", get(whoami));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

/// The address of the connection's peer, for servers other than axum's: insert it into each
/// request's extensions (axum's `ConnectInfo<SocketAddr>` and a bare `SocketAddr` are read
/// too).
///
/// ```
/// use std::net::SocketAddr;
/// use tollgate_tower::PeerAddr;
///
/// let mut request = http::Request::new(());
/// let peer: SocketAddr = "192.0.2.7:50412".parse()?;
/// request.extensions_mut().insert(PeerAddr(peer));
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// A header a trusted proxy writes the client's address into.
///
/// ```
/// use std::net::IpAddr;
/// use tollgate_tower::{ProxyHeader, TrustedProxies};
///
/// let proxies = TrustedProxies::new(["10.0.0.0/8"])?.with_header(ProxyHeader::Forwarded);
/// let mut headers = http::HeaderMap::new();
/// headers.insert("forwarded", r#"for="[2001:db8::1]:4711";proto=https"#.parse()?);
/// headers.insert("x-forwarded-for", "192.0.2.99".parse()?); // not the header believed
/// let peer: IpAddr = "10.0.0.1".parse()?;
/// assert_eq!(proxies.resolve(peer, &headers), "2001:db8::1".parse::<IpAddr>()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`: each proxy appends the address it received
    /// the request from.
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for="[2001:db8::1]:4711"`.
    Forwarded,
    /// `X-Real-IP: client`: one address, set (not appended) by the proxy.
    XRealIp,
}

impl ProxyHeader {
    fn name(self) -> HeaderName {
        match self {
            ProxyHeader::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
            ProxyHeader::Forwarded => http::header::FORWARDED,
            ProxyHeader::XRealIp => HeaderName::from_static("x-real-ip"),
        }
    }
}

/// How the client's address is found: the peer address, unless the peer is a trusted proxy,
/// in which case the proxy header is read from the right and the first address that is not a
/// trusted proxy is the client.
///
/// Only one header is believed: a proxy that appends to `X-Forwarded-For` passes a
/// `Forwarded` header forged by the client through untouched, so believing both would let the
/// client choose its address. A malformed header falls back to the peer address.
///
/// ```
/// use std::net::IpAddr;
/// use tollgate_tower::{ProxyHeader, TrustedProxies};
///
/// let proxies = TrustedProxies::new(["10.0.0.0/8"])?;
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.2".parse()?);
///
/// let peer: IpAddr = "10.0.0.1".parse()?;
/// assert_eq!(proxies.resolve(peer, &headers), "203.0.113.9".parse::<IpAddr>()?);
/// // A peer that is not a trusted proxy is the client, whatever it sends.
/// let outsider: IpAddr = "198.51.100.4".parse()?;
/// assert_eq!(proxies.resolve(outsider, &headers), outsider);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ProxyHeader,
}

/// A trusted-proxy network that is not a CIDR or an address.
///
/// ```
/// use tollgate_tower::{DeclarationError, HttpLimiter, TrustedProxies};
///
/// let err = TrustedProxies::new(["10.0.0.0/8", "proxy.internal"]).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid trusted proxy \"proxy.internal\": expected a CIDR such as 10.0.0.0/8 or fd00::/8, or an address"
/// );
/// // The builder reports it with the other mistakes.
/// let build = HttpLimiter::builder().trusted_proxies(["proxy.internal"]).build().unwrap_err();
/// assert_eq!(build.mistakes(), [DeclarationError::Proxy(err)]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidProxy {
    input: String,
}

impl InvalidProxy {
    /// The entry that is not a CIDR or an address, as given.
    ///
    /// ```
    /// let err = tollgate_tower::TrustedProxies::new(["10.0.0.0/8", "10.0.0.0/40"]).unwrap_err();
    /// assert_eq!(err.input(), "10.0.0.0/40");
    /// ```
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for InvalidProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid trusted proxy {:?}: expected a CIDR such as 10.0.0.0/8 or fd00::/8, or an address",
            self.input
        )
    }
}

impl std::error::Error for InvalidProxy {}

impl Default for TrustedProxies {
    fn default() -> Self {
        Self::none()
    }
}

impl TrustedProxies {
    /// Trusts no proxy: the client is always the peer.
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use tollgate_tower::TrustedProxies;
    ///
    /// let none = TrustedProxies::none();
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-forwarded-for", "203.0.113.9".parse()?);
    /// let peer: IpAddr = "10.0.0.1".parse()?;
    /// assert!(!none.contains(peer));
    /// assert_eq!(none.resolve(peer, &headers), peer); // the header is ignored
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn none() -> Self {
        Self {
            nets: Vec::new(),
            header: ProxyHeader::XForwardedFor,
        }
    }

    /// Trusts the peers in `nets` (CIDRs such as `10.0.0.0/8`, or single addresses) to tell
    /// the client's address in `X-Forwarded-For`.
    ///
    /// ```
    /// use tollgate_tower::TrustedProxies;
    ///
    /// assert!(TrustedProxies::new(["127.0.0.1/32", "::1"]).is_ok());
    /// let err = TrustedProxies::new(["10.0.0.0/33"]).unwrap_err();
    /// assert!(err.to_string().starts_with("invalid trusted proxy \"10.0.0.0/33\""));
    /// ```
    pub fn new<I>(nets: I) -> Result<Self, InvalidProxy>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let nets = nets
            .into_iter()
            .map(|net| parse_net(net.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            nets,
            header: ProxyHeader::XForwardedFor,
        })
    }

    /// Reads the client's address from `header` instead of `X-Forwarded-For`.
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use tollgate_tower::{ProxyHeader, TrustedProxies};
    ///
    /// let proxies = TrustedProxies::new(["10.0.0.0/8"])?.with_header(ProxyHeader::XRealIp);
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-real-ip", "203.0.113.9".parse()?);
    /// headers.insert("x-forwarded-for", "192.0.2.1".parse()?);
    /// let peer: IpAddr = "10.0.0.1".parse()?;
    /// assert_eq!(proxies.resolve(peer, &headers), "203.0.113.9".parse::<IpAddr>()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_header(mut self, header: ProxyHeader) -> Self {
        self.header = header;
        self
    }

    /// The header believed from trusted proxies.
    ///
    /// ```
    /// use tollgate_tower::{ProxyHeader, TrustedProxies};
    ///
    /// let proxies = TrustedProxies::new(["10.0.0.0/8"])?;
    /// assert_eq!(proxies.header(), ProxyHeader::XForwardedFor);
    /// assert_eq!(proxies.with_header(ProxyHeader::Forwarded).header(), ProxyHeader::Forwarded);
    /// # Ok::<(), tollgate_tower::InvalidProxy>(())
    /// ```
    pub fn header(&self) -> ProxyHeader {
        self.header
    }

    /// Whether `ip` is a trusted proxy.
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use tollgate_tower::TrustedProxies;
    ///
    /// let proxies = TrustedProxies::new(["10.0.0.0/8", "2001:db8::7"])?;
    /// let ip = |text: &str| text.parse::<IpAddr>().unwrap();
    /// assert!(proxies.contains(ip("10.1.2.3")));
    /// assert!(proxies.contains(ip("::ffff:10.1.2.3"))); // IPv4-mapped: the IPv4 address
    /// assert!(proxies.contains(ip("2001:db8::7")));
    /// assert!(!proxies.contains(ip("192.0.2.1")));
    /// # Ok::<(), tollgate_tower::InvalidProxy>(())
    /// ```
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use tollgate_tower::TrustedProxies;
    ///
    /// let proxies = TrustedProxies::new(["10.0.0.0/8"])?;
    /// let peer: IpAddr = "10.0.0.1".parse()?;
    /// let mut headers = http::HeaderMap::new();
    /// assert_eq!(proxies.resolve(peer, &headers), peer); // no header: the peer
    /// headers.insert("x-forwarded-for", "not an address".parse()?);
    /// assert_eq!(proxies.resolve(peer, &headers), peer); // malformed: the peer
    /// headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.5".parse()?);
    /// assert_eq!(proxies.resolve(peer, &headers), "203.0.113.9".parse::<IpAddr>()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        self.client_from_header(headers).unwrap_or(peer)
    }

    /// The rightmost address in the header that is not a trusted proxy; if every address is
    /// trusted, the leftmost. `None` when the header is absent, or malformed at or right of
    /// that address (what lies left of it was written by the client and is never read).
    fn client_from_header(&self, headers: &HeaderMap) -> Option<IpAddr> {
        // Several header lines form one list, in order; walk it from the right.
        let lines: Vec<_> = headers.get_all(self.header.name()).iter().collect();
        let mut leftmost = None;
        for line in lines.into_iter().rev() {
            let line = line.to_str().ok()?;
            if self.header == ProxyHeader::XRealIp && line.contains(',') {
                return None;
            }
            for entry in line.rsplit(',') {
                let ip = canonical(match self.header {
                    ProxyHeader::Forwarded => forwarded_for(entry)?,
                    _ => parse_node(entry.trim())?,
                });
                if !self.contains(ip) {
                    return Some(ip);
                }
                leftmost = Some(ip);
            }
        }
        leftmost
    }
}

/// The peer address of a request: axum's `ConnectInfo<SocketAddr>`, a [`PeerAddr`], or a bare
/// `SocketAddr` in its extensions.
pub(crate) fn peer_addr(extensions: &Extensions) -> Option<IpAddr> {
    if let Some(ConnectInfo(addr)) = extensions.get::<ConnectInfo<SocketAddr>>() {
        return Some(addr.ip());
    }
    if let Some(PeerAddr(addr)) = extensions.get::<PeerAddr>() {
        return Some(addr.ip());
    }
    extensions.get::<SocketAddr>().map(SocketAddr::ip)
}

/// An IPv4-mapped IPv6 address (as dual-stack sockets report IPv4 peers) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn parse_net(input: &str) -> Result<IpNet, InvalidProxy> {
    let input = input.trim();
    IpNet::from_str(input)
        .or_else(|_| IpAddr::from_str(input).map(IpNet::from))
        .map_err(|_| InvalidProxy {
            input: input.to_owned(),
        })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1` or
/// `[2001:db8::1]:8080`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        if after.is_empty() || after.strip_prefix(':').is_some_and(is_port) {
            return ip.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
        }
        return None;
    }
    let (ip, port) = node.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

/// The address in the `for=` parameter of one `Forwarded` element; `None` for an element
/// without one, or with an obfuscated or `unknown` node.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        parse_node(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn headers(name: &'static str, values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(name, http::HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn nodes_with_ports_and_brackets() {
        assert_eq!(parse_node("192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("192.0.2.1:8080"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        for junk in [
            "",
            "unknown",
            "_hidden",
            "1.2.3",
            "1.2.3.4:",
            "1.2.3.4:x",
            "[::1",
            "[::1]x",
        ] {
            assert_eq!(parse_node(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn rightmost_untrusted_address_of_x_forwarded_for() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).expect("valid");
        let h = headers("x-forwarded-for", &["6.6.6.6, 203.0.113.9", "10.1.1.1"]);
        assert_eq!(proxies.resolve(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        // Everything trusted: the leftmost address.
        let h = headers("x-forwarded-for", &["10.9.9.9, 10.1.1.1"]);
        assert_eq!(proxies.resolve(ip("10.0.0.1"), &h), ip("10.9.9.9"));
        // No header: the peer.
        assert_eq!(
            proxies.resolve(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn malformed_header_falls_back_to_the_peer() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).expect("valid");
        for junk in [
            "not an ip",
            "1.2.3.4,,",
            "10.1.1.1, garbage",
            "garbage, 10.1.1.1",
            "",
        ] {
            let h = headers("x-forwarded-for", &[junk]);
            assert_eq!(
                proxies.resolve(ip("10.0.0.1"), &h),
                ip("10.0.0.1"),
                "{junk:?}"
            );
        }
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"1.2.3.4\xff").expect("obs-text is a valid value"),
        );
        assert_eq!(proxies.resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).expect("valid");
        let h = headers("x-forwarded-for", &["1.1.1.1"]);
        assert_eq!(proxies.resolve(ip("192.0.2.50"), &h), ip("192.0.2.50"));
        assert_eq!(
            TrustedProxies::none().resolve(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn forwarded_header() {
        let proxies = TrustedProxies::new(["10.0.0.0/8", "fd00::/8"])
            .expect("valid")
            .with_header(ProxyHeader::Forwarded);
        let h = headers(
            "forwarded",
            &[r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#],
        );
        assert_eq!(proxies.resolve(ip("fd00::1"), &h), ip("2001:db8:cafe::17"));
        let h = headers("forwarded", &["for=unknown"]);
        assert_eq!(proxies.resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        // X-Forwarded-For is not believed when Forwarded is the header.
        let h = headers("x-forwarded-for", &["1.2.3.4"]);
        assert_eq!(proxies.resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn x_real_ip_header() {
        let proxies = TrustedProxies::new(["127.0.0.1"])
            .expect("valid")
            .with_header(ProxyHeader::XRealIp);
        let h = headers("x-real-ip", &["198.51.100.7"]);
        assert_eq!(proxies.resolve(ip("127.0.0.1"), &h), ip("198.51.100.7"));
        let h = headers("x-real-ip", &["198.51.100.7, 1.1.1.1"]);
        assert_eq!(proxies.resolve(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn ipv4_mapped_peers_are_ipv4() {
        let proxies = TrustedProxies::new(["127.0.0.1/32"]).expect("valid");
        let h = headers("x-forwarded-for", &["203.0.113.1"]);
        assert_eq!(
            proxies.resolve(ip("::ffff:127.0.0.1"), &h),
            ip("203.0.113.1")
        );
        assert_eq!(proxies.resolve(ip("::ffff:192.0.2.1"), &h), ip("192.0.2.1"));
    }
}
