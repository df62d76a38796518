//! [`Key`]: who pays for a hit.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Deref;
use std::sync::Arc;

/// Anything that names who pays for a hit: an IP address, a user id, an API key.
///
/// A key is compared by its canonical bytes: the text of strings, the usual text form of IP
/// addresses (`192.0.2.1`, `2001:db8::1`; an IPv4-mapped IPv6 address is its IPv4 text) and
/// the decimal form of integers. So the string `"192.0.2.1"`, the address `192.0.2.1` and
/// `::ffff:192.0.2.1` name the same client, in every store.
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use tollgate::Key;
///
/// let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
/// assert_eq!(&*ip.key_bytes(), b"192.0.2.1");
/// assert_eq!(&*"192.0.2.1".key_bytes(), b"192.0.2.1");
/// assert_eq!(&*42u64.key_bytes(), b"42");
/// ```
pub trait Key {
    /// The canonical bytes of this key.
    fn key_bytes(&self) -> KeyBytes<'_>;
}

/// The canonical bytes of a [`Key`]: borrowed from the key, or written into a small inline
/// buffer (for addresses and numbers) without allocating.
///
/// ```
/// use tollgate::Key;
///
/// let bytes = 1234u32.key_bytes();
/// assert_eq!(&*bytes, b"1234");
/// ```
#[derive(Clone)]
pub struct KeyBytes<'a>(Repr<'a>);

#[derive(Clone)]
enum Repr<'a> {
    Borrowed(&'a [u8]),
    /// `bytes[..len]`: room for the longest text of the types implemented here (39 bytes: an
    /// IPv6 address, or a `u128`).
    Inline {
        bytes: [u8; 46],
        len: u8,
    },
}

impl<'a> KeyBytes<'a> {
    /// Key bytes borrowed from `bytes`: what a [`Key`] that holds its canonical bytes returns.
    ///
    /// ```
    /// use tollgate::{Key, KeyBytes};
    ///
    /// /// A tenant, keyed by its id's text.
    /// struct Tenant(String);
    ///
    /// impl Key for Tenant {
    ///     fn key_bytes(&self) -> KeyBytes<'_> {
    ///         KeyBytes::borrowed(self.0.as_bytes())
    ///     }
    /// }
    ///
    /// assert_eq!(&*Tenant("acme".to_owned()).key_bytes(), b"acme");
    /// assert_eq!(&*KeyBytes::borrowed(b"user:42"), b"user:42");
    /// ```
    pub fn borrowed(bytes: &'a [u8]) -> Self {
        Self(Repr::Borrowed(bytes))
    }

    /// Writes `value`'s `Display` text into the inline buffer; text longer than the buffer
    /// (never the case for the types this crate implements [`Key`] for) is cut short.
    fn display(value: impl fmt::Display) -> Self {
        let mut writer = InlineWriter {
            bytes: [0; 46],
            len: 0,
        };
        // InlineWriter never fails; it drops what does not fit.
        let _ = fmt::write(&mut writer, format_args!("{value}"));
        Self(Repr::Inline {
            bytes: writer.bytes,
            len: writer.len,
        })
    }

    /// The dotted-quad text of an IPv4 address, written from a table of the 256 octets'
    /// texts (it is on the hot path of per-IP limits).
    fn ipv4(ip: Ipv4Addr) -> Self {
        let mut bytes = [0u8; 46];
        let mut len = 0;
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                bytes[len] = b'.';
                len += 1;
            }
            let (digits, n) = OCTETS[usize::from(octet)];
            bytes[len..len + 3].copy_from_slice(&digits);
            len += usize::from(n);
        }
        Self(Repr::Inline {
            bytes,
            len: len as u8,
        })
    }
}

/// The decimal text of every octet, padded to 3 bytes, with its length.
const OCTETS: [([u8; 3], u8); 256] = {
    let mut table = [([0u8; 3], 0u8); 256];
    let mut octet = 0;
    while octet < 256 {
        let (h, t, o) = (
            (octet / 100) as u8,
            (octet / 10 % 10) as u8,
            (octet % 10) as u8,
        );
        table[octet] = match octet {
            0..=9 => ([b'0' + o, 0, 0], 1),
            10..=99 => ([b'0' + t, b'0' + o, 0], 2),
            _ => ([b'0' + h, b'0' + t, b'0' + o], 3),
        };
        octet += 1;
    }
    table
};

impl Deref for KeyBytes<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Borrowed(bytes) => bytes,
            Repr::Inline { bytes, len } => &bytes[..usize::from(*len)],
        }
    }
}

impl fmt::Debug for KeyBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyBytes({:?})", String::from_utf8_lossy(self))
    }
}

/// A `fmt::Write` into a fixed buffer that drops what does not fit.
struct InlineWriter {
    bytes: [u8; 46],
    len: u8,
}

impl fmt::Write for InlineWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let start = usize::from(self.len);
        let n = s.len().min(self.bytes.len() - start);
        self.bytes[start..start + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n as u8;
        Ok(())
    }
}

impl Key for str {
    fn key_bytes(&self) -> KeyBytes<'_> {
        KeyBytes::borrowed(self.as_bytes())
    }
}

impl Key for String {
    fn key_bytes(&self) -> KeyBytes<'_> {
        KeyBytes::borrowed(self.as_bytes())
    }
}

impl Key for [u8] {
    fn key_bytes(&self) -> KeyBytes<'_> {
        KeyBytes::borrowed(self)
    }
}

impl Key for Vec<u8> {
    fn key_bytes(&self) -> KeyBytes<'_> {
        KeyBytes::borrowed(self)
    }
}

impl Key for Cow<'_, str> {
    fn key_bytes(&self) -> KeyBytes<'_> {
        KeyBytes::borrowed(self.as_bytes())
    }
}

impl Key for Arc<str> {
    fn key_bytes(&self) -> KeyBytes<'_> {
        KeyBytes::borrowed(self.as_bytes())
    }
}

impl Key for Ipv4Addr {
    fn key_bytes(&self) -> KeyBytes<'_> {
        KeyBytes::ipv4(*self)
    }
}

impl Key for Ipv6Addr {
    /// An IPv4-mapped address (`::ffff:192.0.2.1`, as dual-stack sockets report IPv4 peers)
    /// is the IPv4 address's key.
    fn key_bytes(&self) -> KeyBytes<'_> {
        match self.to_ipv4_mapped() {
            Some(ip) => KeyBytes::ipv4(ip),
            None => KeyBytes::display(self),
        }
    }
}

impl Key for IpAddr {
    fn key_bytes(&self) -> KeyBytes<'_> {
        match self {
            IpAddr::V4(ip) => KeyBytes::ipv4(*ip),
            IpAddr::V6(ip) => ip.key_bytes(),
        }
    }
}

macro_rules! integer_keys {
    ($($t:ty),*) => {$(
        impl Key for $t {
            fn key_bytes(&self) -> KeyBytes<'_> {
                KeyBytes::display(self)
            }
        }
    )*};
}

integer_keys!(u16, u32, u64, u128, i32, i64);

impl<K: Key + ?Sized> Key for &K {
    fn key_bytes(&self) -> KeyBytes<'_> {
        (**self).key_bytes()
    }
}

/// How a key is shown in logs: its first [`LoggedKey::MAX_SHOWN`] bytes with anything but
/// printable ASCII escaped (`\n`, `\"`, `\xff`), then how many bytes were left out. Keys come
/// from clients, so a log line can be neither forged by one (a newline in a header) nor made
/// arbitrarily long.
pub(crate) struct LoggedKey<'a>(pub(crate) &'a [u8]);

impl LoggedKey<'_> {
    /// The longest prefix of a key shown.
    pub(crate) const MAX_SHOWN: usize = 64;
}

impl fmt::Display for LoggedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(Self::MAX_SHOWN)];
        write!(f, "{}", shown.escape_ascii())?;
        if self.0.len() > shown.len() {
            write!(f, "... ({} more bytes)", self.0.len() - shown.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_text_matches_display_for_every_octet() {
        for octet in 0..=255u8 {
            for ip in [
                Ipv4Addr::new(octet, 0, 9, 255),
                Ipv4Addr::new(1, octet, 10, 99),
                Ipv4Addr::new(100, 7, octet, octet),
            ] {
                assert_eq!(&*ip.key_bytes(), ip.to_string().as_bytes());
            }
        }
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_address() {
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("valid address");
        assert_eq!(&*mapped.key_bytes(), b"192.0.2.1");
        let v6: IpAddr = "2001:db8::1".parse().expect("valid address");
        assert_eq!(&*v6.key_bytes(), b"2001:db8::1");
    }

    #[test]
    fn longest_texts_fit() {
        let ip: Ipv6Addr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .expect("valid address");
        assert_eq!(&*ip.key_bytes(), ip.to_string().as_bytes());
        assert_eq!(&*u128::MAX.key_bytes(), u128::MAX.to_string().as_bytes());
        assert_eq!(&*i64::MIN.key_bytes(), i64::MIN.to_string().as_bytes());
    }

    #[test]
    fn logged_keys_are_escaped_and_truncated() {
        assert_eq!(LoggedKey(b"user:42").to_string(), "user:42");
        assert_eq!(LoggedKey(b"a\nb\"c\xff").to_string(), "a\\nb\\\"c\\xff");
        let long = vec![b'k'; 100];
        assert_eq!(
            LoggedKey(&long).to_string(),
            format!("{}... (36 more bytes)", "k".repeat(64))
        );
    }
}
