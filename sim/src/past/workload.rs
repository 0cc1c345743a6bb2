//! Workloads of the PAST experiments: node capacities, file sizes, lookup popularity.
//!
//! PAST section 5 drew node capacities from a truncated normal distribution (its d1: mean
//! 27 MB, standard deviation 10.8 MB, truncated to [2, 51] MB) and file sizes from two
//! traces: a web proxy trace (NLANR; median 1,312 bytes, mean 10,517 bytes, largest 138 MB)
//! and a file system trace (median 4,578 bytes, mean 88,233 bytes, largest 2.7 GB). We have
//! neither trace, so file sizes are drawn from a lognormal distribution fitted to the two
//! statistics PAST reports for each (median and mean; sigma = sqrt(2 ln(mean / median))),
//! truncated at the largest file: a heavy-tailed distribution with those moments.

use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

/// A uniform number in [0, 1).
pub fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal number (Box-Muller).
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = unit(rng).max(f64::MIN_POSITIVE);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * core::f64::consts::PI * u2).cos()
}

/// A normal distribution truncated to [low, high] (by rejection).
#[derive(Clone, Copy, Debug)]
pub struct TruncatedNormal {
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub sd: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl TruncatedNormal {
    /// PAST's d1 node capacities, in bytes, divided by `scale`.
    pub fn past_d1(scale: f64) -> Self {
        let mb = 1_000_000.0 / scale;
        TruncatedNormal { mean: 27.0 * mb, sd: 10.8 * mb, low: 2.0 * mb, high: 51.0 * mb }
    }

    /// A sample.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        loop {
            let x = self.mean + self.sd * normal(rng);
            if (self.low..=self.high).contains(&x) {
                return x;
            }
        }
    }
}

/// File sizes: lognormal with a given median and mean, truncated.
#[derive(Clone, Copy, Debug)]
pub struct FileSizes {
    /// Median size in bytes.
    pub median: f64,
    /// Mean size in bytes (before truncation).
    pub mean: f64,
    /// Largest size.
    pub max: f64,
}

impl FileSizes {
    /// Fitted to PAST's web proxy trace, sizes divided by `scale`.
    pub fn web(scale: f64) -> Self {
        FileSizes { median: 1312.0 / scale, mean: 10_517.0 / scale, max: 138e6 / scale }
    }

    /// Fitted to PAST's file system trace, sizes divided by `scale`.
    pub fn filesystem(scale: f64) -> Self {
        FileSizes { median: 4578.0 / scale, mean: 88_233.0 / scale, max: 2.7e9 / scale }
    }

    /// The lognormal's sigma.
    pub fn sigma(&self) -> f64 {
        (2.0 * (self.mean / self.median).ln()).sqrt()
    }

    /// A sample (at least 1 byte).
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> u64 {
        loop {
            let x = (self.median.ln() + self.sigma() * normal(rng)).exp();
            if x <= self.max {
                return x.max(1.0) as u64;
            }
        }
    }
}

/// Zipf popularity over `n` items: item i (0-based) has weight 1 / (i+1)^alpha.
#[derive(Clone, Debug)]
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    /// Over `n` items with exponent `alpha`.
    pub fn new(n: usize, alpha: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (0..n)
            .map(|i| {
                total += 1.0 / ((i + 1) as f64).powf(alpha);
                total
            })
            .collect::<Vec<_>>();
        Zipf { cumulative: cumulative.iter().map(|c| c / total).collect() }
    }

    /// A sample: an item index.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        let u = unit(rng);
        self.cumulative.partition_point(|&c| c < u).min(self.cumulative.len().saturating_sub(1))
    }
}

/// Fisher-Yates with the given generator.
pub fn shuffle<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn web_sizes_have_the_trace_median_and_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let sizes = FileSizes::web(1.0);
        let mut samples: Vec<u64> = (0..200_000).map(|_| sizes.sample(&mut rng)).collect();
        samples.sort_unstable();
        let median = samples[samples.len() / 2] as f64;
        let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64;
        assert!((median / 1312.0 - 1.0).abs() < 0.05, "median {median}");
        assert!((mean / 10_517.0 - 1.0).abs() < 0.25, "mean {mean}");
    }

    #[test]
    fn zipf_prefers_the_first_items() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let zipf = Zipf::new(100, 1.0);
        let hits = (0..10_000).filter(|_| zipf.sample(&mut rng) == 0).count();
        assert!(hits > 1500 && hits < 2300, "{hits}");
    }
}
