//! XXH3, the hash of every digest hawser puts on the wire or on disk (frame digests,
//! header checksums, replication block digests, whole-file hashes, journal records).
//!
//! One place picks the implementation: `twox-hash`, which selects AVX2 or SSE2 at run
//! time. The build targets baseline x86-64, and a crate that picks its SIMD at compile
//! time (as `xxhash-rust` does) runs its SSE2 path everywhere, at well under half the
//! rate for identical digests. A data mover hashes every byte on both ends, so that
//! factor shows in its rate.
//!
//! ```
//! use hawser_wire::xxh3::{Hasher128, hash128};
//!
//! let mut h = Hasher128::new();
//! h.update(b"hello, ");
//! h.update(b"hawser");
//! assert_eq!(h.digest128(), hash128(b"hello, hawser"));
//! ```

use std::hash::Hasher as _;

/// XXH3-64 of `bytes`.
#[inline]
pub fn hash64(bytes: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(bytes)
}

/// XXH3-128 of `bytes`.
#[inline]
pub fn hash128(bytes: &[u8]) -> u128 {
    twox_hash::XxHash3_128::oneshot(bytes)
}

/// Streaming XXH3-64 (default secret, seed 0): the same digest as [`hash64`] of the
/// concatenated input.
#[derive(Clone, Default)]
pub struct Hasher64(twox_hash::XxHash3_64);

impl Hasher64 {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes`.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    /// The digest of everything fed so far (the state goes on).
    pub fn digest(&self) -> u64 {
        self.0.finish()
    }
}

impl std::fmt::Debug for Hasher64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher64")
    }
}

/// Streaming XXH3-128 (default secret, seed 0): the same digest as [`hash128`] of the
/// concatenated input.
#[derive(Clone, Default)]
pub struct Hasher128(twox_hash::XxHash3_128);

impl Hasher128 {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes`.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    /// The digest of everything fed so far (the state goes on).
    pub fn digest128(&self) -> u128 {
        self.0.finish_128()
    }
}

impl std::fmt::Debug for Hasher128 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher128")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Published XXH3 test values (empty input, seed 0), so a change of implementation
    /// cannot silently change every digest hawser has written.
    #[test]
    fn known_digests() {
        assert_eq!(hash64(b""), 0x2D06_8005_38D3_94C2);
        assert_eq!(hash128(b""), 0x99AA_06D3_0147_98D8_6001_C324_468D_497F);
    }

    proptest! {
        /// Fed in any pieces, the streaming states give the one-shot digests.
        #[test]
        fn streaming_matches_one_shot(data in proptest::collection::vec(any::<u8>(), 0..5000), cut in 0usize..5000) {
            let cut = cut.min(data.len());
            let (mut h64, mut h128) = (Hasher64::new(), Hasher128::new());
            for part in [&data[..cut], &data[cut..]] {
                h64.update(part);
                h128.update(part);
            }
            prop_assert_eq!(h64.digest(), hash64(&data));
            prop_assert_eq!(h128.digest128(), hash128(&data));
        }
    }
}
