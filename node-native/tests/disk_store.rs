//! The disk store: the same answers as the core's `MemoryStore`, restarts, a crash before a
//! commit, a damaged database file, upload reads from a file, two opens of one directory.

use std::path::Path;
use std::time::Instant;

use past_core::Id;
use past_core::past::{
    CHUNK_SIZE, FileCertificate, FileCertificateBody, FileId, FileRecord, MemoryStore, Object, PublicKey, Role,
    Signature, Signed, Storage, StorageError, StorageOp, StorageReply, UploadId,
};
use past_node::disk_store::{DATABASE_FILE, DiskStore, DiskStoreError};
use proptest::prelude::*;

fn file_id(n: u8) -> FileId {
    FileId([n; 20])
}

fn record(file: FileId, size: u64, role: Role, committed: bool) -> FileRecord {
    let body = FileCertificateBody {
        file,
        content_hash: [1; 20],
        chunk_list: [2; 20],
        k: 3,
        salt: 4,
        created: 5,
        size,
        name: "name".into(),
        owner: PublicKey([6; 32]),
    };
    let certificate: FileCertificate = Signed { body, signer: PublicKey([6; 32]), signature: Signature([7; 64]) };
    FileRecord { certificate: certificate.into(), chunk_hashes: vec![[8; 20]], role, committed }
}

fn chunk(index: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(index) as u8).collect()
}

fn ok(store: &mut DiskStore, op: StorageOp) {
    assert_eq!(store.perform(op), Ok(StorageReply::Done));
}

fn read(store: &mut DiskStore, file: FileId, index: u32) -> Result<StorageReply, StorageError> {
    store.perform(StorageOp::Read { object: Object::File(file), index })
}

/// Creates `file` of `size` bytes, writes all its chunks and, if `commit`, commits it.
fn store_file(store: &mut DiskStore, file: FileId, size: u64, commit: bool) {
    ok(store, StorageOp::Create { file, record: record(file, size, Role::Primary, false) });
    for index in 0..past_core::past::chunk_count(size) {
        let data = chunk(index, past_core::past::chunk_len(size, index));
        ok(store, StorageOp::Write { file, index, data });
    }
    if commit {
        ok(store, StorageOp::PutRecord { file, record: record(file, size, Role::Primary, true) });
    }
}

const UPLOAD_SIZE: usize = 2 * CHUNK_SIZE + 5;

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Primary),
        Just(Role::Cached),
        Just(Role::Diverted { primary: Id::from_u128(9) }),
        Just(Role::Pointer { holder: Id::from_u128(10) }),
    ]
}

fn size() -> impl Strategy<Value = u64> {
    prop::sample::select(vec![0, 1, 100, CHUNK_SIZE as u64, CHUNK_SIZE as u64 + 1, 3 * CHUNK_SIZE as u64 - 7])
}

fn op() -> impl Strategy<Value = StorageOp> {
    let file = (0u8..3).prop_map(file_id);
    prop_oneof![
        1 => (file.clone(), size(), role(), any::<bool>())
            .prop_map(|(file, size, role, c)| StorageOp::Create { file, record: record(file, size, role, c) }),
        3 => (file.clone(), 0u32..4, 0usize..40).prop_map(|(file, index, len)| StorageOp::Write {
            file,
            index,
            data: chunk(index, len)
        }),
        1 => (file.clone(), size(), role(), any::<bool>())
            .prop_map(|(file, size, role, c)| StorageOp::PutRecord { file, record: record(file, size, role, c) }),
        2 => (file.clone(), 0u32..4).prop_map(|(file, index)| StorageOp::Read { object: Object::File(file), index }),
        1 => (0u64..2, 0u32..5).prop_map(|(u, index)| StorageOp::Read { object: Object::Upload(UploadId(u)), index }),
        1 => file.prop_map(|file| StorageOp::Delete { file }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any sequence of operations gets the answers `MemoryStore` gives, and leaves the same
    /// records.
    #[test]
    fn same_answers_as_memory_store(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let upload = dir.path().join("upload");
        let content = chunk(99, UPLOAD_SIZE);
        std::fs::write(&upload, &content).unwrap();
        let mut disk = DiskStore::open(dir.path().join("store")).unwrap();
        let mut memory = MemoryStore::new();
        disk.add_upload(UploadId(0), upload);
        memory.add_upload(UploadId(0), content);
        for op in ops {
            let expected = memory.perform(op.clone());
            prop_assert_eq!(disk.perform(op.clone()), expected, "{:?}", op);
        }
        let expected: Vec<FileRecord> = memory.records().map(|(_, r)| r.clone()).filter(|r| r.committed).collect();
        prop_assert_eq!(disk.restore().unwrap(), expected);
    }
}

#[test]
fn reopen_restores_committed_files_and_drops_uncommitted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let size = 2 * CHUNK_SIZE as u64 + 10;
    {
        let mut store = DiskStore::open(dir.path()).unwrap();
        store_file(&mut store, file_id(1), size, true);
        store_file(&mut store, file_id(2), size, false);
    }
    let mut store = DiskStore::open(dir.path()).unwrap();
    let restored = store.restore().unwrap();
    assert_eq!(restored, vec![record(file_id(1), size, Role::Primary, true)]);
    for index in 0..3 {
        let data = chunk(index, past_core::past::chunk_len(size, index));
        assert_eq!(read(&mut store, file_id(1), index), Ok(StorageReply::Data(data)));
        assert_eq!(read(&mut store, file_id(2), index), Err(StorageError::NotFound));
    }
    // The uncommitted file's chunks are gone, not hidden: a new file under its id starts empty.
    ok(&mut store, StorageOp::Create { file: file_id(2), record: record(file_id(2), size, Role::Primary, false) });
    assert_eq!(read(&mut store, file_id(2), 0), Err(StorageError::NotFound));
    drop(store);
    assert_eq!(DiskStore::open(dir.path()).unwrap().restore().unwrap().len(), 1);
}

/// A node killed between an insert's chunk writes and its commit: what restore finds is the
/// state of the last durable commit, and the partial file is dropped.
#[test]
fn a_crash_before_the_commit_drops_the_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let size = 4 * CHUNK_SIZE as u64;
    {
        let mut store = DiskStore::open(dir.path()).unwrap();
        store_file(&mut store, file_id(1), size, true);
        ok(&mut store, StorageOp::Create { file: file_id(3), record: record(file_id(3), size, Role::Cached, false) });
        for index in 0..2 {
            ok(&mut store, StorageOp::Write { file: file_id(3), index, data: chunk(index, CHUNK_SIZE) });
        }
        // Dropped here, before the PutRecord that would commit file 3.
    }
    let mut store = DiskStore::open(dir.path()).unwrap();
    let restored = store.restore().unwrap();
    assert_eq!(restored.iter().map(|r| r.certificate.body.file).collect::<Vec<_>>(), vec![file_id(1)]);
    assert_eq!(read(&mut store, file_id(3), 0), Err(StorageError::NotFound));
    assert_eq!(read(&mut store, file_id(1), 3), Ok(StorageReply::Data(chunk(3, CHUNK_SIZE))));
}

/// The directory the child process of [`a_killed_process_loses_only_the_uncommitted_file`]
/// writes to.
const CHILD_DIR: &str = "PAST_DISK_STORE_CHILD_DIR";

/// The child: commits file 1, writes half of file 3, and dies without closing anything.
#[test]
#[ignore = "the child process of a_killed_process_loses_only_the_uncommitted_file"]
fn child_writes_then_aborts() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let mut store = DiskStore::open(dir).unwrap();
    store_file(&mut store, file_id(1), 3 * CHUNK_SIZE as u64, true);
    ok(
        &mut store,
        StorageOp::Create { file: file_id(3), record: record(file_id(3), size_of_3(), Role::Primary, false) },
    );
    for index in 0..2 {
        ok(&mut store, StorageOp::Write { file: file_id(3), index, data: chunk(index, CHUNK_SIZE) });
    }
    std::process::abort();
}

fn size_of_3() -> u64 {
    4 * CHUNK_SIZE as u64
}

/// A process killed (abort: no destructor runs, nothing is closed) after committing one file
/// and in the middle of another: the committed one is whole, the other gone.
#[test]
fn a_killed_process_loses_only_the_uncommitted_file() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writes_then_aborts", "--ignored", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must die mid-insert");
    #[cfg(unix)]
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(6), "aborted, not panicked: {status}");
    assert!(dir.path().join(DATABASE_FILE).exists());
    let mut store = DiskStore::open(dir.path()).unwrap();
    let restored = store.restore().unwrap();
    assert_eq!(restored, vec![record(file_id(1), 3 * CHUNK_SIZE as u64, Role::Primary, true)]);
    for index in 0..3 {
        assert_eq!(read(&mut store, file_id(1), index), Ok(StorageReply::Data(chunk(index, CHUNK_SIZE))));
    }
    assert_eq!(read(&mut store, file_id(3), 0), Err(StorageError::NotFound));
    drop(store);
    assert_eq!(DiskStore::open(dir.path()).unwrap().restore().unwrap().len(), 1);
}

#[test]
fn a_corrupted_database_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = DiskStore::open(dir.path()).unwrap();
        for n in 0..8 {
            store_file(&mut store, file_id(n), 3 * CHUNK_SIZE as u64, true);
        }
    }
    let path = dir.path().join(DATABASE_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 4096] {
        *byte ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let error = match DiskStore::open(dir.path()) {
        Err(e) => e,
        Ok(mut store) => store.restore().expect_err("a damaged store must not restore"),
    };
    assert!(matches!(error, DiskStoreError::Corrupted { .. }), "{error:?}");
    assert!(error.to_string().contains("is corrupted"), "{error}");
}

/// Damage anywhere in the file: the store refuses to open or restore, or the damage hit no
/// page in use and every file is whole; never a panic, never wrong bytes.
#[test]
fn damage_anywhere_is_refused_or_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let size = 3 * CHUNK_SIZE as u64;
    {
        let mut store = DiskStore::open(dir.path().join("original")).unwrap();
        for n in 0..8 {
            store_file(&mut store, file_id(n), size, true);
        }
    }
    let original = std::fs::read(dir.path().join("original").join(DATABASE_FILE)).unwrap();
    let mut refused = 0;
    for step in 0..20 {
        let offset = original.len() * step / 20;
        let mut bytes = original.clone();
        let end = original.len().min(offset + 512);
        bytes[offset..end].iter_mut().for_each(|b| *b ^= 0xa5);
        let copy = dir.path().join(format!("damaged-{step}"));
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::write(copy.join(DATABASE_FILE), &bytes).unwrap();
        let restored = DiskStore::open(&copy).and_then(|mut store| store.restore().map(|records| (store, records)));
        let (mut store, records) = match restored {
            Ok(restored) => restored,
            Err(error) => {
                assert!(matches!(error, DiskStoreError::Corrupted { .. }), "offset {offset}: {error:?}");
                refused += 1;
                continue;
            }
        };
        // Not refused: the damage hit no page in use, and everything is there.
        assert_eq!(records.len(), 8, "offset {offset}");
        for n in 0..8 {
            for index in 0..3 {
                let expected = Ok(StorageReply::Data(chunk(index, CHUNK_SIZE)));
                assert_eq!(read(&mut store, file_id(n), index), expected, "offset {offset}");
            }
        }
    }
    println!("refused {refused} of 20 damaged copies");
    assert!(refused > 0);
}

#[test]
fn a_file_that_is_not_a_database_is_refused_as_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DATABASE_FILE), vec![0x42; 10_000]).unwrap();
    let error = DiskStore::open(dir.path()).expect_err("not a database");
    assert!(matches!(error, DiskStoreError::Corrupted { .. }), "{error:?}");
}

#[test]
fn reading_an_upload_reads_its_byte_range_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let content = chunk(5, 3 * CHUNK_SIZE + 123);
    let path = dir.path().join("to-insert.bin");
    std::fs::write(&path, &content).unwrap();
    let mut store = DiskStore::open(dir.path().join("store")).unwrap();
    store.add_upload(UploadId(7), path.clone());
    let read_upload =
        |store: &mut DiskStore, index| store.perform(StorageOp::Read { object: Object::Upload(UploadId(7)), index });
    for index in 0..4u32 {
        let start = index as usize * CHUNK_SIZE;
        let expected = content[start..content.len().min(start + CHUNK_SIZE)].to_vec();
        assert_eq!(read_upload(&mut store, index), Ok(StorageReply::Data(expected)), "chunk {index}");
    }
    assert_eq!(read_upload(&mut store, 5), Err(StorageError::NotFound));
    let other = store.perform(StorageOp::Read { object: Object::Upload(UploadId(8)), index: 0 });
    assert_eq!(other, Err(StorageError::NotFound));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(read_upload(&mut store, 0), Err(StorageError::NotFound));
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_as_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let first = DiskStore::open(dir.path()).unwrap();
    let error = DiskStore::open(dir.path()).expect_err("the first open holds the store");
    assert!(matches!(error, DiskStoreError::InUse { .. }), "{error:?}");
    assert!(error.to_string().contains("in use"), "{error}");
    drop(first);
    DiskStore::open(dir.path()).unwrap();
}

/// Chunk write throughput (run with `--release --ignored --nocapture`).
#[test]
#[ignore = "a measurement"]
fn throughput() {
    let dir = tempfile::tempdir_in(std::env::var_os("STORE_DIR").map_or_else(std::env::temp_dir, Into::into)).unwrap();
    let mut store = DiskStore::open(dir.path()).unwrap();
    let size = 1024 * CHUNK_SIZE as u64;
    let started = Instant::now();
    store_file(&mut store, file_id(1), size, true);
    report("64 KiB chunk writes, one commit at the end", size, started);
    let started = Instant::now();
    for n in 0..64u8 {
        store_file(&mut store, file_id(n + 2), CHUNK_SIZE as u64, true);
    }
    report("64 one-chunk files, each create + write + commit", 64 * CHUNK_SIZE as u64, started);
    drop(store);
    let started = Instant::now();
    let restored = DiskStore::open(dir.path()).unwrap().restore().unwrap();
    println!("open (integrity check) and restore of {} files, 68 MiB: {:?}", restored.len(), started.elapsed());
}

fn report(what: &str, bytes: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!("{what}: {:.1} MB/s ({bytes} bytes in {secs:.3} s)", bytes as f64 / secs / 1e6);
}

/// Unmounts its tmpfs when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(path).ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk: the write that does not fit answers `Full`, what was committed stays readable,
/// and the store works again once the core frees space.
#[test]
#[ignore = "mounts a 2 MiB tmpfs: needs root (cargo test -p past-node --test disk_store -- --ignored full_disk)"]
fn a_full_disk_answers_full_and_keeps_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mount = Tmpfs::mount(&dir.path().join("small"), "2m").expect("mounting a tmpfs needs root");
    let mut store = DiskStore::open(&mount.0).unwrap();
    store_file(&mut store, file_id(1), CHUNK_SIZE as u64, true);
    let (big, size) = (file_id(2), 64 * CHUNK_SIZE as u64);
    ok(&mut store, StorageOp::Create { file: big, record: record(big, size, Role::Primary, false) });
    // Chunk writes may sit in redb's write buffer: the error comes with them or with the commit.
    let writes = (0..64).map(|index| StorageOp::Write { file: big, index, data: chunk(index, CHUNK_SIZE) });
    let commit = StorageOp::PutRecord { file: big, record: record(big, size, Role::Primary, true) };
    let failure = writes.chain([commit]).map(|op| store.perform(op)).find_map(Result::err);
    assert_eq!(failure, Some(StorageError::Full));
    // The core gives up the insert and deletes it; the store reopens and carries on.
    assert_eq!(store.perform(StorageOp::Delete { file: big }), Ok(StorageReply::Done));
    assert_eq!(read(&mut store, file_id(1), 0), Ok(StorageReply::Data(chunk(0, CHUNK_SIZE))));
    store_file(&mut store, file_id(3), 100, true);
    drop(store);
    let mut store = DiskStore::open(&mount.0).unwrap();
    let files: Vec<FileId> = store.restore().unwrap().iter().map(|r| r.certificate.body.file).collect();
    assert_eq!(files, vec![file_id(1), file_id(3)]);
}

#[test]
fn a_directory_that_cannot_be_made_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let error = DiskStore::open(file.join("store")).expect_err("a file is in the way");
    assert!(matches!(error, DiskStoreError::Directory { .. }), "{error:?}");
    assert!(error.to_string().starts_with("cannot use the store directory"), "{error}");
}
