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
    /// A key of at most 15 bytes in its packed form (see [`KeyBytes::packed`]): byte 0 its
    /// length, then the bytes, then zeros. Built in registers (an IPv4 address's text).
    Packed([u8; 16]),
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
    #[inline]
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

    /// The dotted-quad text of an IPv4 address in its packed form, built in registers from
    /// a table of the 256 octets' texts (it is on the hot path of per-IP limits): `a.b.` in
    /// one word and `c.d` in another, joined with a single wide shift.
    #[inline]
    fn ipv4(ip: Ipv4Addr) -> Self {
        let [a, b, c, d] = ip.octets().map(|octet| OCTETS[usize::from(octet)]);
        let dot = |(digits, n): (u64, u32)| (digits | u64::from(b'.') << (8 * n), n + 1);
        let (a, b, c) = (dot(a), dot(b), dot(c));
        let (first, first_len) = (a.0 | b.0 << (8 * a.1), a.1 + b.1);
        let (second, second_len) = (c.0 | d.0 << (8 * c.1), c.1 + d.1);
        let text = u128::from(first) | u128::from(second) << (8 * first_len);
        let packed = text << 8 | u128::from(first_len + second_len);
        Self(Repr::Packed(packed.to_le_bytes()))
    }

    /// These bytes packed into 16 (as the memory store keeps a short key): the length in
    /// byte 0 (little-endian), the bytes from byte 1, zeros after them; `None` for more than
    /// 15 bytes.
    ///
    /// Read with two overlapping loads rather than copied byte by byte, so that no narrow
    /// write is read back wide (a store-forwarding stall).
    #[inline]
    pub(crate) fn packed(&self) -> Option<u128> {
        match &self.0 {
            Repr::Packed(bytes) => Some(u128::from_le_bytes(*bytes)),
            _ => pack(self),
        }
    }
}

/// `key` packed into 16 bytes: see [`KeyBytes::packed`].
#[inline]
pub(crate) fn pack(key: &[u8]) -> Option<u128> {
    let len = key.len();
    let wide = |a: u64, b: u64, shift: usize| u128::from(a) | u128::from(b) << (8 * shift);
    let text = if len > 15 {
        return None;
    } else if let (Some(head), Some(tail)) = (key.first_chunk::<8>(), key.last_chunk::<8>()) {
        wide(
            u64::from_le_bytes(*head),
            u64::from_le_bytes(*tail),
            len - 8,
        )
    } else if let (Some(head), Some(tail)) = (key.first_chunk::<4>(), key.last_chunk::<4>()) {
        let (head, tail) = (u32::from_le_bytes(*head), u32::from_le_bytes(*tail));
        wide(u64::from(head), u64::from(tail), len - 4)
    } else if let (Some(&first), Some(&last)) = (key.first(), key.last()) {
        let middle = key[len / 2];
        u128::from(first)
            | u128::from(middle) << (8 * (len / 2))
            | u128::from(last) << (8 * (len - 1))
    } else {
        0
    };
    Some(text << 8 | len as u128)
}

/// The decimal text of every octet, little-endian in a `u64` (zeros after the digits), with
/// its length.
const OCTETS: [(u64, u32); 256] = {
    let mut table = [(0u64, 0u32); 256];
    let mut octet = 0;
    while octet < 256 {
        let (h, t, o) = (octet / 100, octet / 10 % 10, octet % 10);
        let zero = b'0' as u64;
        table[octet as usize] = match octet {
            0..=9 => (zero + o, 1),
            10..=99 => ((zero + t) | (zero + o) << 8, 2),
            _ => ((zero + h) | (zero + t) << 8 | (zero + o) << 16, 3),
        };
        octet += 1;
    }
    table
};

impl Deref for KeyBytes<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Borrowed(bytes) => bytes,
            Repr::Packed(bytes) => &bytes[1..=usize::from(bytes[0])],
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
    #[inline]
    fn key_bytes(&self) -> KeyBytes<'_> {
        KeyBytes::borrowed(self.as_bytes())
    }
}

impl Key for String {
    #[inline]
    fn key_bytes(&self) -> KeyBytes<'_> {
        KeyBytes::borrowed(self.as_bytes())
    }
}

impl Key for [u8] {
    #[inline]
    fn key_bytes(&self) -> KeyBytes<'_> {
        KeyBytes::borrowed(self)
    }
}

impl Key for Vec<u8> {
    #[inline]
    fn key_bytes(&self) -> KeyBytes<'_> {
        KeyBytes::borrowed(self)
    }
}

impl Key for Cow<'_, str> {
    #[inline]
    fn key_bytes(&self) -> KeyBytes<'_> {
        KeyBytes::borrowed(self.as_bytes())
    }
}

impl Key for Arc<str> {
    #[inline]
    fn key_bytes(&self) -> KeyBytes<'_> {
        KeyBytes::borrowed(self.as_bytes())
    }
}

impl Key for Ipv4Addr {
    #[inline]
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
    /// Inlined for IPv4 (the packed text in registers); IPv6 is a call.
    #[inline]
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
    #[inline]
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

    /// The packed form: the length in byte 0, the bytes, zeros; built from an address in
    /// registers or read from any slice, it is the same.
    fn packed_by_hand(key: &[u8]) -> Option<u128> {
        let mut bytes = [0u8; 16];
        bytes[0] = u8::try_from(key.len()).ok().filter(|len| *len <= 15)?;
        bytes[1..=key.len()].copy_from_slice(key);
        Some(u128::from_le_bytes(bytes))
    }

    #[test]
    fn ipv4_keys_pack_as_their_text() {
        for octet in 0..=255u8 {
            for ip in [
                Ipv4Addr::new(octet, 0, 9, 255),
                Ipv4Addr::new(1, octet, 10, 99),
                Ipv4Addr::new(100, 7, octet, octet),
                Ipv4Addr::new(255, 255, 255, octet),
            ] {
                let text = ip.to_string();
                assert_eq!(ip.key_bytes().packed(), packed_by_hand(text.as_bytes()));
                assert_eq!(pack(text.as_bytes()), packed_by_hand(text.as_bytes()));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_slice_packs_as_by_hand(key in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            proptest::prop_assert_eq!(pack(&key), packed_by_hand(&key));
            proptest::prop_assert_eq!(key.key_bytes().packed(), packed_by_hand(&key));
        }

        #[test]
        fn any_ipv4_address_packs_as_its_text(ip in proptest::num::u32::ANY) {
            let ip = Ipv4Addr::from(ip);
            let text = ip.to_string();
            proptest::prop_assert_eq!(&*ip.key_bytes(), text.as_bytes());
            proptest::prop_assert_eq!(ip.key_bytes().packed(), packed_by_hand(text.as_bytes()));
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
