//! Caching along lookup routes, on a small network: Zipf lookups hit cached copies and take
//! fewer hops; every copy handed over is the right content; the nodes that hold popular
//! files open fewer connections to serve them.

use past_sim::past::experiment::{FilesParams, caching};
use past_sim::past::workload::{FileSizes, TruncatedNormal};

/// 120 nodes, k = 3, 40 files; caching on or off.
fn params(caching: bool) -> FilesParams {
    FilesParams {
        nodes: 120,
        leaf_set: 16,
        k: 3,
        seed: 13,
        files: 40,
        capacity: TruncatedNormal::past_d1(1.0),
        sizes: FileSizes::web(1.0),
        max_size: 100_000,
        caching,
    }
}

#[test]
fn caching_shortens_lookups() {
    let off = caching(&params(false), 1500, 1.0, None);
    let on = caching(&params(true), 1500, 1.0, None);
    assert_eq!(off.ok, 1500);
    assert_eq!(on.ok, 1500);
    assert_eq!(off.cache_hits, 0);
    assert!(on.cache_hits > 300, "{on:?}");
    assert!(on.mean_hops < off.mean_hops * 0.9, "{on:?} vs {off:?}");
}

/// The connections a browser node would open beyond its overlay's for PAST's direct
/// messages: an insert costs its client at most one per replica holder, and caching spreads
/// the lookups of popular files, so the busiest node opens far fewer.
#[test]
fn caching_spares_the_busiest_node_transfer_connections() {
    let off = caching(&params(false), 1500, 1.0, None);
    let on = caching(&params(true), 1500, 1.0, None);
    let inserts = off.insert_transfers;
    assert!(inserts.connections > 0 && inserts.connections <= off.files * 3, "{inserts:?}");
    assert_eq!(inserts, on.insert_transfers, "the same inserts: {on:?}");
    for r in [&off, &on] {
        let t = r.lookup_transfers;
        assert!((t.mean * 120.0 - 2.0 * t.connections as f64).abs() < 1e-6, "each connection has two ends: {t:?}");
        assert!(t.pairs <= t.connections && t.max >= t.p99, "{t:?}");
    }
    assert!(on.lookup_transfers.connections * 2 < off.lookup_transfers.connections, "{on:?} vs {off:?}");
    assert!(on.lookup_transfers.max * 3 < off.lookup_transfers.max, "{on:?} vs {off:?}");
}
