//! Keyed BLAKE3 of eight short inputs at once (XEP §Digests, "Hashing": an edge leaf is the
//! keyed BLAKE3 hash of the edge's canonical encoding under the pair's edge-leaf key).
//!
//! An edge encoding is usually shorter than one 64-byte BLAKE3 block, so its hash is a single
//! compression, and building a digest is thousands of independent compressions. The `blake3`
//! crate computes them one at a time (it parallelises the blocks of one long input, not short
//! inputs). Here the BLAKE3 compression function, as the BLAKE3 specification defines it
//! (§2.2: the state, the G function, seven rounds, the fixed message permutation), runs on
//! eight inputs side by side, one per 32-bit lane of AVX2 registers. The result is exactly
//! `blake3::keyed_hash` of each input (checked against it by the tests below); inputs longer
//! than one block, and CPUs without AVX2, are left to the `blake3` crate by the caller.

/// Inputs hashed together.
pub(crate) const LANES: usize = 8;

/// The longest input hashed here: one block.
pub(crate) const MAX_INPUT: usize = 64;

/// Eight inputs of at most [`MAX_INPUT`] bytes each, zero-padded to one block.
#[derive(Clone, Debug)]
pub(crate) struct Blocks {
    /// The padded blocks.
    pub(crate) bytes: [[u8; MAX_INPUT]; LANES],
    /// The length of each input (0..=64).
    pub(crate) lens: [u8; LANES],
}

impl Default for Blocks {
    fn default() -> Blocks {
        Blocks {
            bytes: [[0; MAX_INPUT]; LANES],
            lens: [0; LANES],
        }
    }
}

impl Blocks {
    /// Puts `input` (at most [`MAX_INPUT`] bytes) in lane `lane`, zero-padded.
    pub(crate) fn set(&mut self, lane: usize, input: &[u8]) {
        let block = &mut self.bytes[lane];
        block[..input.len()].copy_from_slice(input);
        block[input.len()..].fill(0);
        self.lens[lane] = input.len() as u8;
    }
}

/// True if this CPU runs [`keyed_hash_8`].
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `blake3::keyed_hash(key, input)` of the eight inputs in `blocks`, or `None` if the CPU
/// lacks AVX2 ([`available`]).
pub(crate) fn keyed_hash_8(key: &[u8; 32], blocks: &Blocks) -> Option<[[u8; 32]; LANES]> {
    #[cfg(target_arch = "x86_64")]
    {
        if available() {
            // SAFETY: AVX2 is present (checked just above).
            return Some(unsafe { avx2::keyed_hash_8(key, blocks) });
        }
    }
    let _ = (key, blocks);
    None
}

/// The BLAKE3 initialisation vector (specification §2.2, the words of SHA-256's).
const IV: [u32; 8] = [
    0x6A09_E667,
    0xBB67_AE85,
    0x3C6E_F372,
    0xA54F_F53A,
    0x510E_527F,
    0x9B05_688C,
    0x1F83_D9AB,
    0x5BE0_CD19,
];

/// Domain flags of a keyed hash of one block (specification §2.1): the chunk's start and end,
/// the root, keyed.
const FLAGS: u32 = 1 | 2 | 8 | 16;

/// The message permutation applied between rounds (specification §2.2).
const PERMUTATION: [usize; 16] = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];

/// The message word each of the 16 G inputs of each of the 7 rounds reads: round 0 reads the
/// block in order, each later round the previous round's words permuted.
const SCHEDULE: [[usize; 16]; 7] = {
    let mut s = [[0usize; 16]; 7];
    let mut i = 0;
    while i < 16 {
        s[0][i] = i;
        i += 1;
    }
    let mut r = 1;
    while r < 7 {
        let mut i = 0;
        while i < 16 {
            s[r][i] = s[r - 1][PERMUTATION[i]];
            i += 1;
        }
        r += 1;
    }
    s
};

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_loadu_si256, _mm256_or_si256, _mm256_set1_epi32,
        _mm256_setzero_si256, _mm256_slli_epi32, _mm256_srli_epi32, _mm256_storeu_si256,
        _mm256_xor_si256,
    };

    use super::{Blocks, FLAGS, IV, LANES, SCHEDULE};

    #[target_feature(enable = "avx2")]
    #[inline]
    #[allow(unused_unsafe)] // intrinsics are safe here from Rust 1.87, unsafe in 1.85
    unsafe fn rotr<const R: i32, const L: i32>(x: __m256i) -> __m256i {
        // SAFETY: AVX2 is enabled for this function; shifts of 32-bit lanes by constants.
        unsafe { _mm256_or_si256(_mm256_srli_epi32::<R>(x), _mm256_slli_epi32::<L>(x)) }
    }

    /// The G function on four state vectors with two message vectors (specification §2.2).
    #[target_feature(enable = "avx2")]
    #[inline]
    #[allow(unused_unsafe)] // intrinsics are safe here from Rust 1.87, unsafe in 1.85
    unsafe fn g(
        v: &mut [__m256i; 16],
        a: usize,
        b: usize,
        c: usize,
        d: usize,
        x: __m256i,
        y: __m256i,
    ) {
        // SAFETY: AVX2 is enabled for this function; plain lane-wise arithmetic.
        unsafe {
            v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), x);
            v[d] = rotr::<16, 16>(_mm256_xor_si256(v[d], v[a]));
            v[c] = _mm256_add_epi32(v[c], v[d]);
            v[b] = rotr::<12, 20>(_mm256_xor_si256(v[b], v[c]));
            v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), y);
            v[d] = rotr::<8, 24>(_mm256_xor_si256(v[d], v[a]));
            v[c] = _mm256_add_epi32(v[c], v[d]);
            v[b] = rotr::<7, 25>(_mm256_xor_si256(v[b], v[c]));
        }
    }

    /// See [`super::keyed_hash_8`].
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    #[allow(unused_unsafe)] // intrinsics are safe here from Rust 1.87, unsafe in 1.85
    pub(super) unsafe fn keyed_hash_8(key: &[u8; 32], blocks: &Blocks) -> [[u8; 32]; LANES] {
        // Message word j of every lane, side by side.
        let mut words = [[0u32; LANES]; 16];
        for (lane, block) in blocks.bytes.iter().enumerate() {
            for (j, w) in block.chunks_exact(4).enumerate() {
                words[j][lane] = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            }
        }
        let lens: [u32; LANES] = std::array::from_fn(|lane| u32::from(blocks.lens[lane]));
        // SAFETY: AVX2 is enabled for this function; every load and store is unaligned on
        // arrays of exactly 8 u32.
        unsafe {
            let m: [__m256i; 16] =
                std::array::from_fn(|j| _mm256_loadu_si256(words[j].as_ptr().cast()));
            let k = |i: usize| {
                let w = u32::from_le_bytes([
                    key[4 * i],
                    key[4 * i + 1],
                    key[4 * i + 2],
                    key[4 * i + 3],
                ]);
                _mm256_set1_epi32(w as i32)
            };
            let mut v: [__m256i; 16] = [
                k(0),
                k(1),
                k(2),
                k(3),
                k(4),
                k(5),
                k(6),
                k(7),
                _mm256_set1_epi32(IV[0] as i32),
                _mm256_set1_epi32(IV[1] as i32),
                _mm256_set1_epi32(IV[2] as i32),
                _mm256_set1_epi32(IV[3] as i32),
                // Counter 0 (low and high words), the block length, the flags.
                _mm256_setzero_si256(),
                _mm256_setzero_si256(),
                _mm256_loadu_si256(lens.as_ptr().cast()),
                _mm256_set1_epi32(FLAGS as i32),
            ];
            for s in &SCHEDULE {
                // Columns, then diagonals.
                g(&mut v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
                g(&mut v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
                g(&mut v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
                g(&mut v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
                g(&mut v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
                g(&mut v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
                g(&mut v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
                g(&mut v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
            }
            let mut out = [[0u8; 32]; LANES];
            for i in 0..8 {
                let mut h = [0u32; LANES];
                _mm256_storeu_si256(h.as_mut_ptr().cast(), _mm256_xor_si256(v[i], v[i + 8]));
                for (lane, word) in h.iter().enumerate() {
                    out[lane][4 * i..4 * i + 4].copy_from_slice(&word.to_le_bytes());
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length from 0 to 64, with varied bytes and keys: equal to the `blake3` crate.
    #[test]
    fn equals_blake3_keyed_hash() {
        if !available() {
            eprintln!("no AVX2 on this CPU: the blake3 crate is used instead");
            return;
        }
        for round in 0u32..40 {
            let key = *blake3::hash(&round.to_le_bytes()).as_bytes();
            let mut blocks = Blocks::default();
            let inputs: Vec<Vec<u8>> = (0..LANES)
                .map(|lane| {
                    let len = ((round as usize) * LANES + lane) % (MAX_INPUT + 1);
                    let seed = blake3::hash(&[round as u8, lane as u8]);
                    let mut xof = blake3::Hasher::new().update(seed.as_bytes()).finalize_xof();
                    let mut input = vec![0u8; len];
                    xof.fill(&mut input);
                    input
                })
                .collect();
            for (lane, input) in inputs.iter().enumerate() {
                blocks.set(lane, input);
            }
            let got = keyed_hash_8(&key, &blocks).expect("AVX2 available");
            for (lane, input) in inputs.iter().enumerate() {
                assert_eq!(
                    got[lane],
                    *blake3::keyed_hash(&key, input).as_bytes(),
                    "round {round}, lane {lane}, {} bytes",
                    input.len()
                );
            }
        }
    }

    #[test]
    fn schedule_is_the_permutation_applied_per_round() {
        assert_eq!(SCHEDULE[0], std::array::from_fn(|i| i));
        assert_eq!(SCHEDULE[1], PERMUTATION);
        for r in SCHEDULE {
            let mut sorted = r;
            sorted.sort_unstable();
            assert_eq!(sorted, std::array::from_fn(|i| i));
        }
    }
}
