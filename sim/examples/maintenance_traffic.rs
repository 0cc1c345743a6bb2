//! Maintenance traffic with the default timers, without and with periodic row exchange: a
//! network of N nodes (default 2,000) built by joins with probes, then keep-alives every
//! 5 s and routing table probes every 60 s (the defaults of `past_core::Config`) for T
//! virtual seconds (default 1,200), once with row exchange off and once every 600 s.
//!
//! ```sh
//! cargo run --release -p past-sim --example maintenance_traffic -- 2000 1200
//! ```

use core::time::Duration;

use past_core::{DigitBase, Proximity};
use past_sim::experiment::{Params, build};

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().ok());
    let nodes = args.next().flatten().unwrap_or(2_000) as usize;
    let secs = args.next().flatten().unwrap_or(1_200);
    let params = Params {
        nodes,
        base: DigitBase::DEFAULT,
        leaf_set_size: 16,
        neighborhood_size: 32,
        lookups: 0,
        seed: 1,
        proximity: Proximity::Probes,
    };
    for row_exchange in [None, Some(Duration::from_secs(600))] {
        let (mut network, _) = build(&params);
        network.set_row_exchange(row_exchange);
        network.set_maintenance(Some(Duration::from_secs(5)), Some(Duration::from_secs(60)), true);
        let before = network.counters();
        network.run_for(Duration::from_secs(secs));
        let after = network.counters();
        let total = after.total() - before.total();
        println!(
            "row exchange {row_exchange:?}: {total} messages in {secs} s over {nodes} nodes, {:.3} per node per second (probes {}, leaf sets {}, row requests and replies {}, table repair {}, new nodes {})",
            total as f64 / nodes as f64 / secs as f64,
            after.probe - before.probe,
            after.leaf_set - before.leaf_set,
            after.join - before.join,
            after.repair - before.repair,
            after.new_node - before.new_node,
        );
    }
}
