//! Philox-4x32-10 counter-based random numbers, uniforms and Box–Muller normals.
//!
//! Source: Salmon, Moraes, Dror & Shaw, "Parallel Random Numbers: As Easy as 1, 2, 3",
//! SC 2011; reference implementation Random123 (`philox.h`), whose known-answer vectors
//! (`kat_vectors`) are checked in `tests/reference.rs`.

/// Round multipliers of Philox-4x32.
pub const PHILOX_M: [u32; 2] = [0xD251_1F53, 0xCD9E_8D57];
/// Weyl key increments of Philox-4x32 (golden ratio, sqrt(3) − 1).
pub const PHILOX_W: [u32; 2] = [0x9E37_79B9, 0xBB67_AE85];

#[inline]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = (a as u64) * (b as u64);
    ((p >> 32) as u32, p as u32)
}

/// Philox-4x32-10: maps `counter [4]` and `key [2]` to four random `u32`.
///
/// One round: `(hi0, lo0) = mulhilo(M0, c0)`, `(hi1, lo1) = mulhilo(M1, c2)`,
/// `c = [hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0]`; the key is bumped by the Weyl
/// constants between rounds (10 rounds, 9 bumps).
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(PHILOX_W[0]);
            k[1] = k[1].wrapping_add(PHILOX_W[1]);
        }
        let (hi0, lo0) = mulhilo(PHILOX_M[0], c[0]);
        let (hi1, lo1) = mulhilo(PHILOX_M[1], c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// Maps a random `u32` to a uniform in the open interval `(0, 1)` using its top 24 bits:
/// `((u >> 8) + 0.5) / 2^24` (exactly representable in f32, never 0 or 1).
pub fn uniform(u: u32) -> f64 {
    ((u >> 8) as f64 + 0.5) / 16_777_216.0
}

/// Box–Muller transform (Box & Muller 1958): two uniforms in `(0, 1)` to two independent
/// standard normals, `r = sqrt(−2 ln u1)`, `(r cos 2πu2, r sin 2πu2)`.
pub fn box_muller(u1: f64, u2: f64) -> (f64, f64) {
    let r = (-2.0 * u1.ln()).sqrt();
    let a = 2.0 * std::f64::consts::PI * u2;
    (r * a.cos(), r * a.sin())
}
