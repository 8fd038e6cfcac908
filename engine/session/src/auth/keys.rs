//! Keys a server derives from its random seed (from the driver; the state machines read no
//! entropy themselves): the key behind unknown identities' dummy credentials, and the key
//! of its unguessable nexus ids.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A per-server key from which the dummy credentials of unknown identities are derived.
pub(crate) type DummyKey = [u8; 32];

/// A key for `purpose`, derived from a server's `seed`.
pub(crate) fn derive_key(seed: u64, purpose: &[u8]) -> [u8; 32] {
    keyed(&seed.to_le_bytes(), &[purpose])
}

/// The dummy key of a server seeded with `seed`.
pub(crate) fn dummy_key(seed: u64) -> DummyKey {
    derive_key(seed, b"hawser-dummy-secret-key")
}

/// HMAC-SHA-256 of the concatenated `parts` under `key`.
pub(crate) fn keyed(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        m.update(part);
    }
    m.finalize().into_bytes().into()
}

/// The `n`th output of the pseudo-random function keyed by `key` (HMAC-SHA256 of the
/// counter, first 16 bytes): values nobody can predict from earlier ones.
pub(crate) fn prf_u128(key: &[u8; 32], n: u64) -> u128 {
    let out = keyed(key, &[&n.to_le_bytes()]);
    let mut first = [0; 16];
    first.copy_from_slice(&out[..16]);
    u128::from_le_bytes(first)
}
