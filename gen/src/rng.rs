//! The RNG and this crate's samplers. Only `next_u64` of ChaCha8 is used, so
//! the stream (and thus the output for a seed) does not depend on `rand`'s
//! distribution code.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub(crate) struct Rng(ChaCha8Rng);

impl Rng {
    pub(crate) fn seeded(seed: u64) -> Self {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }

    pub(crate) fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((self.u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in [lo, hi).
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(hi > lo);
        lo + self.below((hi - lo) as u64) as i64
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Log-uniform in [lo, hi).
    pub(crate) fn log_uniform(&mut self, lo: i64, hi: i64) -> i64 {
        let v = (lo as f64 * ((hi as f64 / lo as f64).ln() * self.unit()).exp()) as i64;
        v.clamp(lo, hi - 1)
    }

    pub(crate) fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            0
        } else if mean < 30.0 {
            let limit = (-mean).exp();
            let mut k = 0;
            let mut p = self.unit();
            while p > limit {
                k += 1;
                p *= self.unit();
            }
            k
        } else {
            // Normal approximation; Irwin-Hall keeps it to plain arithmetic.
            let mut z = -6.0;
            for _ in 0..12 {
                z += self.unit();
            }
            (mean + mean.sqrt() * z).round().max(0.0) as u64
        }
    }
}
