//! Caching along lookup routes, on a small network: Zipf lookups hit cached copies and take
//! fewer hops; every copy handed over is the right content.

use past_sim::past::experiment::{FilesParams, caching};
use past_sim::past::workload::{FileSizes, TruncatedNormal};

#[test]
fn caching_shortens_lookups() {
    let params = |on| FilesParams {
        nodes: 120,
        leaf_set: 16,
        k: 3,
        seed: 13,
        files: 40,
        capacity: TruncatedNormal::past_d1(1.0),
        sizes: FileSizes::web(1.0),
        max_size: 100_000,
        caching: on,
    };
    let off = caching(&params(false), 1500, 1.0);
    let on = caching(&params(true), 1500, 1.0);
    assert_eq!(off.ok, 1500);
    assert_eq!(on.ok, 1500);
    assert_eq!(off.cache_hits, 0);
    assert!(on.cache_hits > 300, "{on:?}");
    assert!(on.mean_hops < off.mean_hops * 0.9, "{on:?} vs {off:?}");
}
