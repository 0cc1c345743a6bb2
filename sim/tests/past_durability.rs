//! Durability with replica maintenance, on a small network with a fixed seed: kill 4 of the
//! 5 holders of files at once, then 10% of the nodes.

use past_sim::past::experiment::{FilesParams, durability};
use past_sim::past::workload::{FileSizes, TruncatedNormal};

#[test]
fn files_survive_and_k_replicas_come_back() {
    let params = FilesParams {
        nodes: 150,
        leaf_set: 16,
        k: 5,
        seed: 9,
        files: 60,
        capacity: TruncatedNormal::past_d1(1.0),
        sizes: FileSizes::web(1.0),
        max_size: 200_000,
        caching: false,
        relay: true,
    };
    let (loaded, scenarios) = durability(&params);
    let files = loaded.files.len();
    assert!(files >= 55, "{} files inserted", files);
    for s in &scenarios {
        assert_eq!(s.full_before, files, "{}: k replicas before", s.name);
        assert_eq!(s.retrievable_after_failure, files, "{}: every file retrievable right after", s.name);
        assert_eq!(s.lost, 0, "{}: no file lost", s.name);
        assert_eq!(s.full_after, files, "{}: k replicas after maintenance", s.name);
        assert_eq!(s.retrievable_after_maintenance, files, "{}", s.name);
        assert!(s.maintenance_bytes > 0, "{}: maintenance moved data", s.name);
    }
    assert!(scenarios[0].targets >= 3 && scenarios[0].killed == 4 * scenarios[0].targets);
}
