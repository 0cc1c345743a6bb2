//! Randomized routing: with 5 % of the nodes silently dropping the lookups they should
//! forward, retries on randomized routes find the file where retries on the first route
//! fail again.

use past_core::Config;
use past_sim::past::randomized::{DropParams, DropRow, dropping};

fn run(best_hop_chance: f64) -> DropRow {
    let params = DropParams {
        nodes: 200,
        leaf_set: 16,
        k: 3,
        seed: 7,
        files: 50,
        lookups: 400,
        shares: vec![0.05],
        attempts: 3,
        best_hop_chance,
    };
    dropping(&params).rows[0]
}

#[test]
fn randomized_retries_get_past_nodes_that_drop() {
    // 1.0: every node forwards a retry to its best hop, so it takes the first route again.
    let same = run(1.0);
    let randomized = run(Config::default().retry_best_hop_chance);
    assert_eq!((same.droppers, same.lookups), (10, 400));
    assert!(same.dropped > 0 && randomized.dropped > 0, "droppers met lookups: {same:?} {randomized:?}");
    // Seed 7: 391 of 400 found on the same route, 399 on randomized routes.
    assert!(same.success() < 0.985, "retries on the same route meet the same dropper: {same:?}");
    assert!(randomized.found >= same.found + 4, "randomized retries find more: {randomized:?} vs {same:?}");
    assert!(randomized.success() >= 0.985, "{randomized:?}");
}
