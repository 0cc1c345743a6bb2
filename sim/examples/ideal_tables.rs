//! The route distance of ideal tables (`past_sim::measure::ideal_relative_distance`) for the
//! node placement of seed 1 at 1,000 to 100,000 nodes, with many more sampled routes than
//! `pastry-sim` draws (2,000), three times each: `pastry-sim`'s figure varies by about 1 %
//! from one sample of routes to another. Ideal tables depend only on where the nodes are and
//! on their ids, which a network of the same seed draws in the same order whatever the
//! protocol does, so the nodes are placed without joining.
//!
//! ```sh
//! cargo run --release -p past-sim --example ideal_tables -- 50000
//! ```

use past_core::{Config, DigitBase};
use past_sim::measure::ideal_relative_distance;
use past_sim::network::Network;

fn main() {
    let samples: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(50_000);
    for nodes in [1_000usize, 2_000, 10_000, 100_000] {
        let mut network: Network = Network::new(Config::default(), nodes, 1);
        for _ in 0..nodes {
            network.spawn();
        }
        for draw in 0..3 {
            let (mean, of_sums) = ideal_relative_distance(&mut network, DigitBase::DEFAULT, 16, samples);
            println!("N = {nodes}, draw {draw}: ideal tables {mean:.4} (of sums {of_sums:.4}), {samples} routes");
        }
    }
}
