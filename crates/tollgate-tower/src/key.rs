//! Key extractors: who pays for a request.
//!
//! An extractor reads a request's head and names the client a limit counts it against. The
//! rate limiter resolves the client's address first (see [`crate::TrustedProxies`]) and puts
//! it in the request's extensions as a [`ClientIp`], so every extractor can fall back to it.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use http::HeaderName;
use http::request::Parts;
use tollgate::{Key, KeyBytes};

use crate::ClientIp;

/// Names the client a request is counted against.
///
/// Returning `None` means "this extractor cannot tell": the built-in extractors chain a
/// fallback with `.or(...)`.
/// A request no extractor can name is counted under one shared key for all such requests, so
/// leaving a header out never escapes a limit.
///
/// Closures `Fn(&Parts) -> Option<RequestKey>` are extractors too.
///
/// ```
/// use tollgate_tower::key::{self, KeyExtractor, RequestKey};
///
///
/// // X-Api-Key when present, else the client IP.
/// let by_api_key = key::header("x-api-key").or(key::client_ip());
/// // Anything else: a closure over the request head.
/// let by_tenant = |parts: &http::request::Parts| {
///     parts.uri.host().map(|host| RequestKey::from(host.to_owned()))
/// };
/// # fn is_extractor(_: impl KeyExtractor) {}
/// # is_extractor(by_api_key);
/// # is_extractor(by_tenant);
/// ```
pub trait KeyExtractor: Send + Sync + 'static {
    /// The key of the request with head `parts`, or `None` if this extractor cannot tell.
    ///
    /// ```
    /// use http::request::Parts;
    /// use tollgate_tower::key::{KeyExtractor, RequestKey};
    ///
    /// /// The tenant: the first label of the `Host` header.
    /// struct Tenant;
    ///
    /// impl KeyExtractor for Tenant {
    ///     fn extract(&self, parts: &Parts) -> Option<RequestKey> {
    ///         let host = parts.headers.get("host")?.to_str().ok()?;
    ///         Some(RequestKey::from(format!("tenant:{}", host.split('.').next()?)))
    ///     }
    /// }
    ///
    /// let (parts, _) = http::Request::get("/").header("host", "acme.example.com").body(())?.into_parts();
    /// assert_eq!(Tenant.extract(&parts), Some(RequestKey::from("tenant:acme")));
    /// let (no_host, _) = http::Request::new(()).into_parts();
    /// assert_eq!(Tenant.extract(&no_host), None);
    /// # Ok::<(), http::Error>(())
    /// ```
    fn extract(&self, parts: &Parts) -> Option<RequestKey>;
}

/// `.or(fallback)` on the extractors that may not tell.
macro_rules! or_fallback {
    ($($name:ident $(<$t:ident>)?),*) => {$(
        impl$(<$t>)? $name$(<$t>)? {
            /// This extractor, or `fallback` when it cannot tell.
            ///
            /// ```
            /// use tollgate::Key;
            /// use tollgate_tower::key::{self, KeyExtractor};
            ///
            /// let by_api_key = key::header("x-api-key").or(key::constant("anonymous"));
            /// let (with, _) = http::Request::get("/").header("x-api-key", "k1").body(())?.into_parts();
            /// let (without, _) = http::Request::new(()).into_parts();
            /// assert_eq!(&*by_api_key.extract(&with).unwrap().key_bytes(), b"x-api-key:k1");
            /// assert_eq!(&*by_api_key.extract(&without).unwrap().key_bytes(), b"anonymous");
            /// // The client IP is unknown without an address: the fallback tells.
            /// let by_ip = key::client_ip().or(key::constant("no-ip"));
            /// assert_eq!(&*by_ip.extract(&without).unwrap().key_bytes(), b"no-ip");
            /// # Ok::<(), http::Error>(())
            /// ```
            pub fn or<F: KeyExtractor>(self, fallback: F) -> Or<Self, F> {
                Or {
                    first: self,
                    fallback,
                }
            }
        }
    )*};
}

or_fallback!(ClientIpKey, HeaderKey, ExtensionKey<T>);

impl<A, B> Or<A, B> {
    /// This chain, or `fallback` when no extractor of it can tell.
    ///
    /// ```
    /// use tollgate::Key;
    /// use tollgate_tower::key::{self, KeyExtractor};
    ///
    /// let chain = key::header("x-api-key").or(key::header("x-user-id")).or(key::constant("anonymous"));
    /// let (user, _) = http::Request::get("/").header("x-user-id", "alice").body(())?.into_parts();
    /// let (nobody, _) = http::Request::new(()).into_parts();
    /// assert_eq!(&*chain.extract(&user).unwrap().key_bytes(), b"x-user-id:alice");
    /// assert_eq!(&*chain.extract(&nobody).unwrap().key_bytes(), b"anonymous");
    /// # Ok::<(), http::Error>(())
    /// ```
    pub fn or<F: KeyExtractor>(self, fallback: F) -> Or<Self, F> {
        Or {
            first: self,
            fallback,
        }
    }
}

impl<F> KeyExtractor for F
where
    F: Fn(&Parts) -> Option<RequestKey> + Send + Sync + 'static,
{
    fn extract(&self, parts: &Parts) -> Option<RequestKey> {
        self(parts)
    }
}

impl KeyExtractor for Arc<dyn KeyExtractor> {
    fn extract(&self, parts: &Parts) -> Option<RequestKey> {
        (**self).extract(parts)
    }
}

/// The key an extractor found: an address, or bytes.
///
/// ```
/// use tollgate::Key;
/// use tollgate_tower::key::RequestKey;
///
/// assert_eq!(&*RequestKey::from("alice").key_bytes(), b"alice");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestKey(KeyRepr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum KeyRepr {
    Ip(IpAddr),
    Bytes(Cow<'static, [u8]>),
}

impl RequestKey {
    /// The key of requests no extractor could name: one shared count for all of them.
    ///
    /// ```
    /// use tollgate::Key;
    /// use tollgate_tower::{HttpLimiter, key::{self, RequestKey}};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// assert_eq!(&*RequestKey::UNKNOWN.key_bytes(), b"?");
    /// // Requests without the header share that one count.
    /// let limiter = HttpLimiter::builder().key(key::header("x-api-key")).default_limit("1/minute").build()?;
    /// assert_eq!(send(&limiter, get("/")).status(), 200);
    /// assert_eq!(send(&limiter, get("/")).status(), 429);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub const UNKNOWN: RequestKey = RequestKey(KeyRepr::Bytes(Cow::Borrowed(b"?")));
}

impl Key for RequestKey {
    fn key_bytes(&self) -> KeyBytes<'_> {
        match &self.0 {
            KeyRepr::Ip(ip) => ip.key_bytes(),
            KeyRepr::Bytes(bytes) => KeyBytes::borrowed(bytes),
        }
    }
}

impl fmt::Debug for RequestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            KeyRepr::Ip(ip) => write!(f, "RequestKey({ip})"),
            KeyRepr::Bytes(bytes) => write!(f, "RequestKey({:?})", String::from_utf8_lossy(bytes)),
        }
    }
}

impl From<IpAddr> for RequestKey {
    fn from(ip: IpAddr) -> Self {
        Self(KeyRepr::Ip(ip))
    }
}

impl From<&'static str> for RequestKey {
    fn from(text: &'static str) -> Self {
        Self(KeyRepr::Bytes(Cow::Borrowed(text.as_bytes())))
    }
}

impl From<String> for RequestKey {
    fn from(text: String) -> Self {
        Self(KeyRepr::Bytes(Cow::Owned(text.into_bytes())))
    }
}

impl From<Vec<u8>> for RequestKey {
    fn from(bytes: Vec<u8>) -> Self {
        Self(KeyRepr::Bytes(Cow::Owned(bytes)))
    }
}

/// The client's address (the default key), with IPv6 clients grouped by their /64.
///
/// ```
/// use std::net::IpAddr;
/// use tollgate::Key;
/// use tollgate_tower::{ClientIp, key::{self, KeyExtractor}};
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(ClientIp("2001:db8:1:2:aaaa::1".parse::<IpAddr>()?));
/// let (parts, _) = request.into_parts();
/// let key = key::client_ip().extract(&parts).expect("an address");
/// assert_eq!(&*key.key_bytes(), b"2001:db8:1:2::");
/// assert_eq!(&*key::client_ip().ipv6_prefix(48).extract(&parts).unwrap().key_bytes(), b"2001:db8:1::");
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub fn client_ip() -> ClientIpKey {
    ClientIpKey { ipv6_prefix: 64 }
}

/// The extractor made by [`client_ip`].
///
/// ```
/// use std::net::IpAddr;
/// use tollgate::Key;
/// use tollgate_tower::{ClientIp, key::{self, KeyExtractor}};
///
/// let parts = |ip: &str| {
///     let mut request = http::Request::new(());
///     request.extensions_mut().insert(ClientIp(ip.parse::<IpAddr>().unwrap()));
///     request.into_parts().0
/// };
/// let extractor = key::client_ip();
/// assert_eq!(&*extractor.extract(&parts("192.0.2.1")).unwrap().key_bytes(), b"192.0.2.1");
/// assert_eq!(&*extractor.extract(&parts("2001:db8::1")).unwrap().key_bytes(), b"2001:db8::");
/// // Without a resolved address, it cannot tell.
/// assert!(extractor.extract(&http::Request::new(()).into_parts().0).is_none());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ClientIpKey {
    ipv6_prefix: u8,
}

impl ClientIpKey {
    /// Groups IPv6 clients by their first `bits` bits (at most 128; 64 unless set).
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use tollgate::Key;
    /// use tollgate_tower::{ClientIp, key::{self, KeyExtractor}};
    ///
    /// let mut request = http::Request::new(());
    /// request.extensions_mut().insert(ClientIp("2001:db8:1:2:3:4:5:6".parse::<IpAddr>()?));
    /// let (parts, _) = request.into_parts();
    /// let key = |bits| key::client_ip().ipv6_prefix(bits).extract(&parts).unwrap();
    /// assert_eq!(&*key(48).key_bytes(), b"2001:db8:1::");
    /// assert_eq!(&*key(128).key_bytes(), b"2001:db8:1:2:3:4:5:6");
    /// assert_eq!(key(200), key(128)); // at most 128
    /// # Ok::<(), std::net::AddrParseError>(())
    /// ```
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
    }
}

impl KeyExtractor for ClientIpKey {
    fn extract(&self, parts: &Parts) -> Option<RequestKey> {
        let ClientIp(ip) = *parts.extensions.get::<ClientIp>()?;
        Some(RequestKey::from(match ip {
            IpAddr::V6(v6) => IpAddr::V6(mask(v6, self.ipv6_prefix)),
            IpAddr::V4(_) => ip,
        }))
    }
}

fn mask(ip: Ipv6Addr, bits: u8) -> Ipv6Addr {
    let keep = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
    Ipv6Addr::from(u128::from(ip) & keep)
}

/// The value of the header `name` (`x-user-id`, `x-api-key`); `None` when absent or empty.
///
/// The key is `name:value`, so a user called `192.0.2.1` never shares a count with that
/// address. Panics if `name` is not a valid header name (it is a constant in the code).
///
/// ```
/// use tollgate::Key;
/// use tollgate_tower::key::{self, KeyExtractor};
///
/// let request = http::Request::builder().header("X-User-Id", "alice").body(())?;
/// let (parts, _) = request.into_parts();
/// let key = key::header("x-user-id").extract(&parts).expect("present");
/// assert_eq!(&*key.key_bytes(), b"x-user-id:alice");
/// # Ok::<(), http::Error>(())
/// ```
pub fn header(name: &'static str) -> HeaderKey {
    HeaderKey {
        name: HeaderName::from_static(name),
    }
}

/// The value of the header `name`, like [`header`], for a name known only at run time (read
/// from a configuration file).
///
/// ```
/// use http::HeaderName;
/// use tollgate::Key;
/// use tollgate_tower::key::{self, KeyExtractor};
///
/// let name = HeaderName::from_bytes(b"X-Api-Key")?; // from a config file, say
/// let request = http::Request::builder().header("x-api-key", "k1").body(())?;
/// let (parts, _) = request.into_parts();
/// let key = key::header_named(name).extract(&parts).expect("present");
/// assert_eq!(&*key.key_bytes(), b"x-api-key:k1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn header_named(name: HeaderName) -> HeaderKey {
    HeaderKey { name }
}

/// The extractor made by [`header`] and [`header_named`].
///
/// ```
/// use tollgate::Key;
/// use tollgate_tower::key::{self, KeyExtractor};
///
/// let user = key::header("x-user-id");
/// let parts = |value: &str| http::Request::get("/").header("x-user-id", value).body(()).unwrap().into_parts().0;
/// assert_eq!(&*user.extract(&parts("alice")).unwrap().key_bytes(), b"x-user-id:alice");
/// assert!(user.extract(&parts("")).is_none()); // empty: cannot tell
/// assert!(user.extract(&http::Request::new(()).into_parts().0).is_none()); // absent
/// ```
#[derive(Debug, Clone)]
pub struct HeaderKey {
    name: HeaderName,
}

impl KeyExtractor for HeaderKey {
    fn extract(&self, parts: &Parts) -> Option<RequestKey> {
        let value = parts.headers.get(&self.name)?.as_bytes();
        if value.is_empty() {
            return None;
        }
        let mut key = Vec::with_capacity(self.name.as_str().len() + 1 + value.len());
        key.extend_from_slice(self.name.as_str().as_bytes());
        key.push(b':');
        key.extend_from_slice(value);
        Some(RequestKey::from(key))
    }
}

/// A value of type `T` an earlier layer put in the request's extensions (the user id an
/// authentication layer found), by its `Display` text with `T`'s short name before it.
///
/// ```
/// use tollgate::Key;
/// use tollgate_tower::key::{self, KeyExtractor};
///
/// #[derive(Clone)]
/// struct UserId(u64);
/// impl std::fmt::Display for UserId {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { self.0.fmt(f) }
/// }
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(UserId(42));
/// let (parts, _) = request.into_parts();
/// let key = key::extension::<UserId>().extract(&parts).expect("set");
/// assert_eq!(&*key.key_bytes(), b"UserId:42");
/// ```
pub fn extension<T>() -> ExtensionKey<T>
where
    T: fmt::Display + Send + Sync + 'static,
{
    ExtensionKey {
        _type: std::marker::PhantomData,
    }
}

/// The extractor made by [`extension`].
///
/// ```
/// use tollgate::Key;
/// use tollgate_tower::key::{self, KeyExtractor};
///
/// let by_user = key::extension::<u64>().or(key::constant("anonymous"));
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(42u64);
/// assert_eq!(&*by_user.extract(&request.into_parts().0).unwrap().key_bytes(), b"u64:42");
/// let (anonymous, _) = http::Request::new(()).into_parts();
/// assert_eq!(&*by_user.extract(&anonymous).unwrap().key_bytes(), b"anonymous");
/// ```
pub struct ExtensionKey<T> {
    _type: std::marker::PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for ExtensionKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExtensionKey<{}>", std::any::type_name::<T>())
    }
}

impl<T> Clone for ExtensionKey<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for ExtensionKey<T> {}

impl<T> KeyExtractor for ExtensionKey<T>
where
    T: fmt::Display + Send + Sync + 'static,
{
    fn extract(&self, parts: &Parts) -> Option<RequestKey> {
        let value = parts.extensions.get::<T>()?;
        let name = std::any::type_name::<T>();
        let name = name.rsplit("::").next().unwrap_or(name);
        Some(RequestKey::from(format!("{name}:{value}")))
    }
}

/// The same key for every request: one count for everyone (a global limit).
///
/// ```
/// use tollgate::Key;
/// use tollgate_tower::key::{self, KeyExtractor};
///
/// let (parts, _) = http::Request::new(()).into_parts();
/// assert_eq!(&*key::constant("all").extract(&parts).unwrap().key_bytes(), b"all");
/// ```
pub fn constant(key: &'static str) -> ConstantKey {
    ConstantKey { key }
}

/// The extractor made by [`constant`].
///
/// ```
/// use tollgate_tower::{HttpLimiter, Limit, key};
///
/// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
/// #     use tower::{Layer, ServiceExt};
/// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
/// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
/// # }
/// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
/// // One count for every client of /export.
/// let limiter = HttpLimiter::builder().route("/export", Limit::new("1/minute").key(key::constant("all"))).build()?;
/// let from = |user: &str| http::Request::get("/export").header("x-user-id", user).body(()).unwrap();
/// assert_eq!(send(&limiter, from("alice")).status(), 200);
/// assert_eq!(send(&limiter, from("bob")).status(), 429);
/// # Ok::<(), tollgate_tower::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ConstantKey {
    key: &'static str,
}

impl KeyExtractor for ConstantKey {
    fn extract(&self, _: &Parts) -> Option<RequestKey> {
        Some(RequestKey::from(self.key))
    }
}

/// One extractor, or another when the first cannot tell: made by `.or(...)`.
///
/// ```
/// use tollgate::Key;
/// use tollgate_tower::key::{self, KeyExtractor, Or};
///
/// let extractor: Or<_, _> = key::header("x-api-key").or(key::constant("anonymous"));
/// let (with, _) = http::Request::get("/").header("x-api-key", "k1").body(())?.into_parts();
/// assert_eq!(&*extractor.extract(&with).unwrap().key_bytes(), b"x-api-key:k1");
/// # Ok::<(), http::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Or<A, B> {
    first: A,
    fallback: B,
}

impl<A: KeyExtractor, B: KeyExtractor> KeyExtractor for Or<A, B> {
    fn extract(&self, parts: &Parts) -> Option<RequestKey> {
        self.first
            .extract(parts)
            .or_else(|| self.fallback.extract(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(request: http::request::Builder) -> Parts {
        request.body(()).expect("valid request").into_parts().0
    }

    #[test]
    fn header_falls_back_when_absent_or_empty() {
        let extractor = header("x-user-id").or(constant("fallback"));
        let alice = parts(http::Request::builder().header("x-user-id", "alice"));
        let empty = parts(http::Request::builder().header("x-user-id", ""));
        let absent = parts(http::Request::builder());
        assert_eq!(
            extractor.extract(&alice),
            Some(RequestKey::from("x-user-id:alice"))
        );
        assert_eq!(
            extractor.extract(&empty),
            Some(RequestKey::from("fallback"))
        );
        assert_eq!(
            extractor.extract(&absent),
            Some(RequestKey::from("fallback"))
        );
    }

    #[test]
    fn ipv6_prefixes() {
        let ip: Ipv6Addr = "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"
            .parse()
            .expect("ip");
        assert_eq!(mask(ip, 128), ip);
        assert_eq!(mask(ip, 64).to_string(), "2001:db8:aaaa:bbbb::");
        assert_eq!(mask(ip, 0), Ipv6Addr::UNSPECIFIED);
        assert_eq!(mask(ip, 1).to_string(), "::");
        assert_eq!(mask(ip, 3).to_string(), "2000::");
    }

    #[test]
    fn client_ip_needs_the_resolved_address() {
        let mut request = parts(http::Request::builder());
        assert_eq!(client_ip().extract(&request), None);
        request
            .extensions
            .insert(ClientIp("192.0.2.1".parse().expect("ip")));
        assert_eq!(
            &*client_ip().extract(&request).expect("set").key_bytes(),
            b"192.0.2.1"
        );
    }
}
