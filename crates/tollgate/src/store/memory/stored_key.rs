//! [`StoredKey`]: a key as the memory store keeps it, in 16 bytes and no allocation.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use siphasher::sip128::{Hasher128, SipHasher24};

use crate::key::KeyBytes;

/// A key in 16 bytes, aligned to 8 so that a table entry with an 8-byte state takes 24:
/// keys of up to 15 bytes are kept as they are (byte 0 holds the length); longer keys are
/// kept as 120 bits of their keyed SipHash-2-4 digest (byte 0 is 0xff).
///
/// Two distinct long keys share a state only if their digests collide: with a secret random
/// SipHash key the chance among 10 million long keys is about 10^-22.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct StoredKey(pub(crate) [u64; 2]);

/// Byte 0 of a digested long key.
const DIGEST: u8 = 0xff;

/// The secret SipHash key that digests long keys; one per store.
#[derive(Clone)]
pub(crate) struct DigestKey {
    k0: u64,
    k1: u64,
}

impl DigestKey {
    /// A fresh random key, drawn from the standard library's random hash seeds.
    pub(crate) fn random() -> Self {
        let seed = |salt: u64| {
            let mut h = RandomState::new().build_hasher();
            h.write_u64(salt);
            h.finish()
        };
        Self {
            k0: seed(0),
            k1: seed(1),
        }
    }
}

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey(..)")
    }
}

impl StoredKey {
    pub(crate) fn new(key: &[u8], digest_key: &DigestKey) -> Self {
        Self::from_packed(crate::key::pack(key), key, digest_key)
    }

    /// The stored form of `key`, taken from its packed form when it has one (an IPv4
    /// address's, built in registers): the same as [`StoredKey::new`] of its bytes.
    #[inline(always)]
    pub(crate) fn of(key: &KeyBytes<'_>, digest_key: &DigestKey) -> Self {
        Self::from_packed(key.packed(), key, digest_key)
    }

    /// `packed` as two words; a key too long to pack (`None`) is digested.
    #[inline(always)]
    fn from_packed(packed: Option<u128>, key: &[u8], digest_key: &DigestKey) -> Self {
        match packed {
            Some(packed) => Self([packed as u64, (packed >> 64) as u64]),
            None => Self::digest(key, digest_key),
        }
    }

    #[cold]
    fn digest(key: &[u8], digest_key: &DigestKey) -> Self {
        let mut sip = SipHasher24::new_with_keys(digest_key.k0, digest_key.k1);
        sip.write(key);
        let mut bytes = [0u8; 16];
        bytes[0] = DIGEST;
        bytes[1..].copy_from_slice(&sip.finish128().as_bytes()[..15]);
        let packed = u128::from_le_bytes(bytes);
        Self([packed as u64, (packed >> 64) as u64])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(key: StoredKey) -> Vec<u8> {
        key.0.iter().flat_map(|half| half.to_le_bytes()).collect()
    }

    #[test]
    fn short_keys_are_kept_whole_and_long_keys_digested() {
        let secret = DigestKey::random();
        let a = StoredKey::new(b"user:123456", &secret);
        assert_eq!(bytes(a)[0], 11);
        assert_eq!(&bytes(a)[1..12], b"user:123456");
        // The empty key and a key of NUL bytes differ by their length byte.
        assert_ne!(StoredKey::new(b"", &secret), StoredKey::new(b"\0", &secret));
        let long = b"2001:db8:1234:5678:9abc:def0:1234:5678";
        assert_eq!(StoredKey::new(long, &secret), StoredKey::new(long, &secret));
        assert_eq!(bytes(StoredKey::new(long, &secret))[0], DIGEST);
        assert_ne!(
            StoredKey::new(long, &secret),
            StoredKey::new(&long[..long.len() - 1], &secret)
        );
        // The packed form of a key's bytes, or of an address, is the same stored key.
        let ip = std::net::Ipv4Addr::new(192, 0, 2, 1);
        assert_eq!(
            StoredKey::of(&crate::Key::key_bytes(&ip), &secret),
            StoredKey::new(b"192.0.2.1", &secret)
        );
        assert_eq!(
            StoredKey::of(&KeyBytes::borrowed(long), &secret),
            StoredKey::new(long, &secret)
        );
        // Another store's secret digests differently.
        assert_ne!(
            StoredKey::new(long, &secret),
            StoredKey::new(long, &DigestKey::random())
        );
    }
}
