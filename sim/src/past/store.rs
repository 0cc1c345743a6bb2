//! A store for simulations: content is a function of a seed, so millions of files cost no
//! memory beyond their bookkeeping.
//!
//! A simulated file's content is generated from a seed that its name carries
//! (`"f-<seed hex>"`, see [`file_name`]). Uploads are staged as (seed, size); a node that
//! writes a verified chunk keeps only the count of chunks written, and a read regenerates
//! the chunk from the seed in the file's certificate. The core checks every chunk against
//! its certificate before writing it, so what a node "stores" is exactly the generated
//! content. A chunk can be marked corrupt to make a node serve bad data.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rustc_hash::FxHashMap;

use past_core::past::{
    FileId, Object, Role, Storage, StorageError, StorageOp, StorageReply, UploadId, chunk_count, chunk_len,
};

/// The name of a simulated file whose content comes from `seed`.
pub fn file_name(seed: u64) -> String {
    format!("f-{seed:016x}")
}

/// The seed in a simulated file's name.
pub fn seed_of(name: &str) -> Option<u64> {
    u64::from_str_radix(name.strip_prefix("f-")?, 16).ok()
}

/// Chunk `index` of the content of `size` bytes generated from `seed`.
pub fn chunk(seed: u64, size: u64, index: u32) -> Vec<u8> {
    let len = chunk_len(size, index);
    let mut out = Vec::with_capacity(len);
    let mut state = seed ^ (u64::from(index) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut next_word = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        splitmix64(state).to_le_bytes()
    };
    // Whole words first, then the last one cut: the fixed-size copies compile to stores.
    for _ in 0..len / 8 {
        out.extend_from_slice(&next_word());
    }
    out.extend_from_slice(&next_word()[..len % 8]);
    out
}

/// splitmix64's output function.
fn splitmix64(state: u64) -> u64 {
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The whole content generated from `seed` (for checks in tests; small files only).
pub fn content(seed: u64, size: u64) -> Vec<u8> {
    (0..chunk_count(size)).flat_map(|i| chunk(seed, size, i)).collect()
}

#[derive(Clone, Debug)]
struct Stored {
    seed: Option<u64>,
    size: u64,
    written: u32,
    role: Role,
    committed: bool,
}

/// A node's store in the simulator.
#[derive(Clone, Debug, Default)]
pub struct SimStore {
    /// Hashed, not ordered: a node looks a file up for every storage request, and a cold
    /// ordered map of thousands of 20-byte keys costs a cache miss per level.
    files: FxHashMap<FileId, Stored>,
    uploads: BTreeMap<UploadId, (u64, u64)>,
    corrupt: BTreeSet<(FileId, u32)>,
    /// The last chunks of uploads read: an insert reads each chunk to hash it, then once for
    /// each of the k nodes that pull it, and generating it again each time took a tenth of
    /// the storage experiment's time.
    recent_reads: VecDeque<((UploadId, u32), Vec<u8>)>,
}

/// Upload chunks [`SimStore`] keeps for reads to come.
const RECENT_READS: usize = 4;

impl SimStore {
    /// An empty store.
    pub fn new() -> Self {
        SimStore::default()
    }

    /// Stages `size` bytes generated from `seed` as an upload.
    pub fn add_upload(&mut self, upload: UploadId, seed: u64, size: u64) {
        self.uploads.insert(upload, (seed, size));
    }

    /// Forgets an upload.
    pub fn remove_upload(&mut self, upload: UploadId) {
        self.uploads.remove(&upload);
        self.recent_reads.retain(|((u, _), _)| *u != upload);
    }

    /// Makes reads of a chunk of a stored file return bad data.
    pub fn corrupt(&mut self, file: FileId, index: u32) {
        self.corrupt.insert((file, index));
    }

    /// Files stored (any role), with their role and whether committed and complete, in
    /// fileId order.
    pub fn files(&self) -> Vec<(FileId, Role, bool)> {
        let mut files: Vec<(FileId, Role, bool)> = self
            .files
            .iter()
            .map(|(f, s)| {
                let complete = !s.role.has_content() || s.written == chunk_count(s.size);
                (*f, s.role, s.committed && complete)
            })
            .collect();
        files.sort_unstable_by_key(|&(file, _, _)| file);
        files
    }

    /// Number of files stored.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// A chunk of an upload, generated once for the reads close together of one insert.
    fn read_upload(&mut self, upload: UploadId, seed: u64, size: u64, index: u32) -> Vec<u8> {
        if let Some((_, data)) = self.recent_reads.iter().find(|(key, _)| *key == (upload, index)) {
            return data.clone();
        }
        let data = chunk(seed, size, index);
        if self.recent_reads.len() >= RECENT_READS {
            self.recent_reads.pop_front();
        }
        self.recent_reads.push_back(((upload, index), data.clone()));
        data
    }

    fn read(&self, seed: u64, size: u64, index: u32, corrupt: bool) -> Vec<u8> {
        let mut data = chunk(seed, size, index);
        if corrupt {
            match data.first_mut() {
                Some(byte) => *byte ^= 0x55,
                None => data.push(0),
            }
        }
        data
    }
}

impl Storage for SimStore {
    fn perform(&mut self, op: StorageOp) -> Result<StorageReply, StorageError> {
        match op {
            StorageOp::Create { file, record } => {
                let stored = Stored {
                    seed: seed_of(&record.certificate.body.name),
                    size: record.size(),
                    written: 0,
                    role: record.role,
                    committed: record.committed,
                };
                self.files.insert(file, stored);
                Ok(StorageReply::Done)
            }
            StorageOp::Write { file, index, data } => {
                let stored = self.files.get_mut(&file).ok_or(StorageError::NotFound)?;
                if data.len() != chunk_len(stored.size, index) {
                    return Err(StorageError::Failed("chunk of the wrong length".into()));
                }
                stored.written = stored.written.max(index + 1);
                Ok(StorageReply::Done)
            }
            StorageOp::PutRecord { file, record } => {
                let stored = self.files.get_mut(&file).ok_or(StorageError::NotFound)?;
                stored.role = record.role;
                stored.committed = record.committed;
                Ok(StorageReply::Done)
            }
            StorageOp::Read { object: Object::File(file), index } => {
                let stored = self.files.get(&file).ok_or(StorageError::NotFound)?;
                let seed = stored.seed.ok_or(StorageError::NotFound)?;
                if index >= stored.written {
                    return Err(StorageError::NotFound);
                }
                let corrupt = self.corrupt.contains(&(file, index));
                Ok(StorageReply::Data(self.read(seed, stored.size, index, corrupt)))
            }
            StorageOp::Read { object: Object::Upload(upload), index } => {
                let &(seed, size) = self.uploads.get(&upload).ok_or(StorageError::NotFound)?;
                if index >= chunk_count(size) {
                    return Err(StorageError::NotFound);
                }
                Ok(StorageReply::Data(self.read_upload(upload, seed, size, index)))
            }
            StorageOp::Delete { file } => {
                self.files.remove(&file);
                Ok(StorageReply::Done)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use past_core::past::CHUNK_SIZE;

    #[test]
    fn generated_content_is_deterministic_and_chunked() {
        let size = CHUNK_SIZE as u64 * 2 + 5;
        let whole = content(7, size);
        assert_eq!(whole.len() as u64, size);
        assert_eq!(&whole[CHUNK_SIZE..2 * CHUNK_SIZE], &chunk(7, size, 1)[..]);
        assert_ne!(chunk(7, size, 0), chunk(8, size, 0));
        assert_eq!(seed_of(&file_name(0xabc)), Some(0xabc));
    }

    #[test]
    fn generated_content_keeps_its_bytes() {
        // Pinned: results of earlier runs were made with this content.
        assert_eq!(chunk(0xdead_beef, 13, 0), [65, 93, 237, 223, 187, 193, 205, 232, 213, 164, 247, 36, 192]);
        let tail = chunk(7, 100_003, 1);
        let sum: u64 = tail.iter().enumerate().map(|(i, &x)| (i as u64 + 1) * u64::from(x)).sum();
        assert_eq!((tail.len(), sum), (34_467, 75_667_204_025));
    }
}
