//! Which of the core's storage requests go to IndexedDB together, and when.
//!
//! Opening a transaction costs the page about a millisecond of main thread, more than
//! reading a 64 KiB chunk; a tab serving a file gets chunk requests one by one. So at most
//! [`MAX_IN_FLIGHT`] transactions run at once, and the requests that arrive meanwhile wait
//! and go out together when one ends: the busier the tab, the larger its transactions.

use std::collections::VecDeque;

use past_core::past::{StorageOp, StorageRequest};

/// Transactions running at once.
const MAX_IN_FLIGHT: usize = 3;

/// Chunk reads of one `readonly` transaction at most: a small group answers the first
/// chunks of a transfer early.
const READS_PER_BATCH: usize = 8;

/// The storage requests waiting for a transaction, in the core's order.
#[derive(Debug, Default)]
pub(crate) struct StoreQueue {
    held: VecDeque<StorageRequest>,
    in_flight: usize,
}

fn is_read(request: &StorageRequest) -> bool {
    matches!(request.op, StorageOp::Read { .. })
}

impl StoreQueue {
    /// Queues a request behind those waiting.
    pub(crate) fn push(&mut self, request: StorageRequest) {
        self.held.push_back(request);
    }

    /// The batches to start now (each one transaction), in order: runs of reads in groups
    /// of up to [`READS_PER_BATCH`], runs of other requests whole.
    pub(crate) fn take(&mut self) -> Vec<Vec<StorageRequest>> {
        let mut batches = Vec::new();
        while self.in_flight < MAX_IN_FLIGHT
            && let Some(first) = self.held.pop_front()
        {
            let reads = is_read(&first);
            let mut batch = vec![first];
            while let Some(next) = self.held.front()
                && is_read(next) == reads
                && (!reads || batch.len() < READS_PER_BATCH)
            {
                batch.extend(self.held.pop_front());
            }
            batches.push(batch);
            self.in_flight += 1;
        }
        batches
    }

    /// A batch from [`take`](Self::take) has its answers.
    pub(crate) fn finished(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use past_core::past::{FileId, Object as Target, StorageId};

    fn request(id: u64, read: bool) -> StorageRequest {
        let file = FileId([1; 20]);
        let op =
            if read { StorageOp::Read { object: Target::File(file), index: 0 } } else { StorageOp::Delete { file } };
        StorageRequest { id: StorageId(id), op }
    }

    fn ids(batches: &[Vec<StorageRequest>]) -> Vec<Vec<u64>> {
        batches.iter().map(|b| b.iter().map(|r| r.id.0).collect()).collect()
    }

    #[test]
    fn batches_keep_the_order_and_group_reads() {
        let mut queue = StoreQueue::default();
        let pattern = [false, false, true, true, true, true, true, true, true, true, true, false];
        for (i, read) in pattern.into_iter().enumerate() {
            queue.push(request(i as u64, read));
        }
        assert_eq!(ids(&queue.take()), vec![vec![0, 1], vec![2, 3, 4, 5, 6, 7, 8, 9], vec![10]]);
        assert!(queue.take().is_empty(), "three transactions run already");
        queue.finished();
        assert_eq!(ids(&queue.take()), vec![vec![11]]);
    }

    #[test]
    fn requests_arriving_while_transactions_run_go_out_together() {
        let mut queue = StoreQueue::default();
        for i in 0..3 {
            queue.push(request(i, true));
            assert_eq!(queue.take().len(), 1, "one read at a time while there is room");
        }
        for i in 3..8 {
            queue.push(request(i, true));
            assert!(queue.take().is_empty());
        }
        queue.finished();
        assert_eq!(ids(&queue.take()), vec![vec![3, 4, 5, 6, 7]]);
    }
}
