//! A copy that bypasses the CPU's caches on its way out (non-temporal stores): for bytes
//! bound for a device, such as a buffer of payload that a direct write hands to the disk.
//! A plain copy first reads every destination line into the cache and later evicts it,
//! two trips to memory per line instead of one, and pushes out what the shard reads next.

/// Copies `src` into `dst` (of the same length) with non-temporal stores where the CPU
/// has them and the copy is long enough to gain (8 KiB or more); the stores are fenced
/// before it returns, so the bytes are in memory order for any later reader, device or
/// thread.
///
/// # Panics
///
/// If the lengths differ, as `copy_from_slice` does.
pub fn copy_past_cache(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "copy_past_cache: lengths differ");
    if src.len() < SMALL {
        dst.copy_from_slice(src);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    x86::copy(dst, src);
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}

/// Copies shorter than this are plain: the fence and the partly written lines at both
/// ends cost more than streaming saves (`benches/benches/stream_copy.rs` compares an
/// Ethernet payload, a jumbo frame's and a 64 KB one).
const SMALL: usize = 8 << 10;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};

    /// Bytes per store and per step of the loop.
    const LANE: usize = 16;
    const STEP: usize = 4 * LANE;

    /// SSE2, which every x86-64 CPU has, so no detection: streaming stores are bound by
    /// memory's write rate, which wider registers do not raise.
    pub(super) fn copy(dst: &mut [u8], src: &[u8]) {
        let len = src.len();
        // The stores need 16-byte aligned destinations: the head up to one is plain.
        let head = dst.as_ptr().align_offset(LANE).min(len);
        dst[..head].copy_from_slice(&src[..head]);
        let body = (len - head) / STEP * STEP;
        let (dst_body, dst_tail) = dst[head..].split_at_mut(body);
        let (src_body, src_tail) = src[head..].split_at(body);
        for (out, input) in dst_body
            .chunks_exact_mut(STEP)
            .zip(src_body.chunks_exact(STEP))
        {
            for lane in 0..STEP / LANE {
                let at = lane * LANE;
                // SAFETY: `input[at..at + LANE]` and `out[at..at + LANE]` lie within
                // chunks of STEP bytes; the load is unaligned; the store's address is
                // 16-byte aligned (the body starts aligned and steps by multiples of 16).
                // SSE2 is part of x86-64.
                unsafe {
                    let value = _mm_loadu_si128(input.as_ptr().add(at).cast::<__m128i>());
                    _mm_stream_si128(out.as_mut_ptr().add(at).cast::<__m128i>(), value);
                }
            }
        }
        dst_tail.copy_from_slice(src_tail);
        // Streaming stores are weakly ordered: fenced, they are visible before anything
        // the caller does next (handing the buffer to a writer thread, say).
        // SAFETY: a fence has no preconditions; SSE is part of x86-64.
        unsafe { _mm_sfence() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    #[should_panic(expected = "lengths differ")]
    fn lengths_must_match() {
        copy_past_cache(&mut [0u8; 300], &[1u8; 301]);
    }

    #[test]
    #[should_panic(expected = "lengths differ")]
    fn lengths_must_match_past_the_plain_size() {
        copy_past_cache(&mut vec![0u8; SMALL + 1], &vec![1u8; SMALL]);
    }

    #[test]
    fn every_alignment_and_tail_is_copied_exactly() {
        let src: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + 3) as u8).collect();
        for skew in 0..LANE_MAX {
            for len in [
                0,
                1,
                1000,
                SMALL - 1,
                SMALL,
                SMALL + 1,
                SMALL + 63,
                9000,
                19_999 - skew,
            ] {
                let mut dst = vec![0xeeu8; 20_048];
                copy_past_cache(&mut dst[skew..skew + len], &src[..len]);
                assert_eq!(&dst[skew..skew + len], &src[..len], "skew {skew} len {len}");
                assert!(
                    dst[..skew].iter().all(|&b| b == 0xee),
                    "before, skew {skew}"
                );
                assert!(
                    dst[skew + len..].iter().all(|&b| b == 0xee),
                    "after, len {len}"
                );
            }
        }
    }

    const LANE_MAX: usize = 17;

    proptest! {
        #[test]
        fn copies_what_copy_from_slice_copies(
            src in proptest::collection::vec(any::<u8>(), 0..3 * SMALL),
            skew in 0usize..64,
        ) {
            let mut dst = vec![0u8; src.len() + 64];
            let mut expected = dst.clone();
            expected[skew..skew + src.len()].copy_from_slice(&src);
            copy_past_cache(&mut dst[skew..skew + src.len()], &src);
            prop_assert_eq!(dst, expected);
        }
    }
}
