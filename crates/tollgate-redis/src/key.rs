//! How a client's key appears in its Redis key: as it is, up to [`MAX_PLAIN_KEY_LEN`] bytes,
//! and as the hex SHA-256 of its bytes beyond.

use sha2::{Digest, Sha256};

/// The longest client key a Redis key holds as it is: 64 bytes. A longer key (a client may
/// send megabytes) is stored as `sha256:` and the 64 hex digits of its SHA-256 digest, 71
/// bytes, so no key takes more room in Redis than that.
///
/// A plain key is at most 64 bytes and a digested one exactly 71, so the two never meet;
/// two long keys share a count only if their SHA-256 digests collide, which nobody can
/// bring about. The digest is not keyed (unlike the memory store's): every process must find
/// the same Redis key for the same client, with no secret to share.
///
/// ```
/// use tollgate::{Policy, Store};
/// use tollgate_redis::{MAX_PLAIN_KEY_LEN, RedisStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect_lazily("redis://127.0.0.1:6379")?; // prepares offline
/// let api = store.prepare("api", &Policy::fixed_window("5/minute".parse()?));
/// let prefix = api.redis_key(b"").len();
/// let short = [b'a'; MAX_PLAIN_KEY_LEN];
/// assert!(api.redis_key(&short).ends_with(&short));
/// let long = vec![b'a'; 1 << 20];
/// let stored = api.redis_key(&long);
/// assert!(stored[prefix..].starts_with(b"sha256:"));
/// assert_eq!(stored.len(), prefix + 71);
/// # Ok(())
/// # }
/// ```
pub const MAX_PLAIN_KEY_LEN: usize = 64;

/// What a digested key starts with.
const DIGEST_TAG: &[u8] = b"sha256:";

/// Appends `key` as its Redis key holds it: as it is, or digested when it is longer than
/// [`MAX_PLAIN_KEY_LEN`].
pub(crate) fn push_client_key(redis_key: &mut Vec<u8>, key: &[u8]) {
    if key.len() <= MAX_PLAIN_KEY_LEN {
        redis_key.extend_from_slice(key);
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    redis_key.extend_from_slice(DIGEST_TAG);
    for byte in Sha256::digest(key) {
        redis_key.push(HEX[usize::from(byte >> 4)]);
        redis_key.push(HEX[usize::from(byte & 0x0f)]);
    }
}

/// The room a client key takes in its Redis key: what [`push_client_key`] appends.
pub(crate) fn client_key_len(key: &[u8]) -> usize {
    if key.len() <= MAX_PLAIN_KEY_LEN {
        key.len()
    } else {
        DIGEST_TAG.len() + 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(key: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_client_key(&mut out, key);
        assert_eq!(out.len(), client_key_len(key));
        out
    }

    #[test]
    fn short_keys_are_kept_and_long_keys_digested() {
        assert_eq!(stored(b""), b"");
        assert_eq!(stored(b"user:42"), b"user:42");
        let most = [0xffu8; MAX_PLAIN_KEY_LEN];
        assert_eq!(stored(&most), most);
        // SHA-256 of 65 bytes of 'a' (as `printf 'a%.0s' $(seq 65) | sha256sum` says).
        let long = [b'a'; MAX_PLAIN_KEY_LEN + 1];
        assert_eq!(
            String::from_utf8(stored(&long)).expect("ascii"),
            "sha256:635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"
        );
        // Keys differing in their last byte only are stored apart.
        let mut other = long;
        other[MAX_PLAIN_KEY_LEN] = b'b';
        assert_ne!(stored(&long), stored(&other));
        // A plain key that looks like a digest is longer than the bound: digested too.
        let lookalike = stored(&long);
        assert_ne!(stored(&lookalike), lookalike);
    }
}
