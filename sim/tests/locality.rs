//! Locality after joins: with probes measuring proximity, routes between random nodes come
//! within a few percent of the route distance of ideal tables (every slot holding the
//! nearest live node that fits) in the same latency model. The second phase of the join
//! (asking the closest entries of each row for their rows) is what gets them there; without
//! it, routes were 8 % longer than ideal at this size.

use past_core::{DigitBase, Proximity};
use past_sim::experiment::{Params, build, random_lookups};
use past_sim::measure::ideal_relative_distance;

#[test]
fn routes_come_within_six_percent_of_ideal_tables() {
    let base = DigitBase::DEFAULT;
    let params = Params {
        nodes: 2_000,
        base,
        leaf_set_size: 16,
        neighborhood_size: 32,
        lookups: 40_000,
        seed: 1,
        proximity: Proximity::Probes,
    };
    let (mut network, _) = build(&params);
    let (_, ideal) = ideal_relative_distance(&mut network, base, params.leaf_set_size, 4_000);
    let (stats, _) = random_lookups(&mut network, base, params.lookups);
    let ratio = stats.relative_distance_of_sums;
    println!("ratio of sums {ratio:.3}, ideal tables {ideal:.3}, {:.1} % above", (ratio / ideal - 1.0) * 100.0);
    assert!(ratio <= ideal * 1.06, "routes {ratio:.3} times the direct distance, ideal tables {ideal:.3}");
}
