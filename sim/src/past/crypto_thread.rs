//! The simulated nodes' signing, and verification ahead of the nodes, on a second thread.
//!
//! Cryptography is most of an insert's cost in the storage experiment: the owner signs the
//! file certificate and each of the k storing nodes a store receipt; the root verifies the
//! certificate and the client the receipts. With a [`CryptoThread`]:
//!
//! - A node's [`SimSigner`] takes each signing request ([`Signer::defer`]) and answers it
//!   [`SIGN_DELAY`] of simulated time later, as a browser's WebCrypto answers
//!   asynchronously. The thread makes the signature meanwhile; if it has not by then, the
//!   node makes it itself (and the thread still verifies it). Ed25519 signatures are deterministic, so the answer, and when it
//!   comes, do not depend on the thread's progress: runs are reproducible.
//! - Each signature made is then verified by the thread, when it has no signing to do (in
//!   batches, as a client verifies its receipts), into the nodes' [`SharedVerified`] set: a node that checks the signature finds it there,
//!   and one that comes first verifies it itself. Every signature is verified and every
//!   check has the same outcome either way.
//!
//! Results therefore depend only on whether signing is deferred (which moves answers
//! [`SIGN_DELAY`] later), never on the thread's speed; only the wall time does, which the
//! machine's second core shortens. This is the simulator's: a real node verifies what it
//! receives itself.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use past_core::Time;
use past_core::past::{
    Ed25519Signer, Keyring, PublicKey, SharedVerified, SignError, SignId, SignRequest, Signature, Signer,
};

/// Simulated time from a signing request to its answer when the thread signs.
pub const SIGN_DELAY: Duration = Duration::from_millis(1);

/// Most signatures waiting for verification; beyond, new ones are left to the nodes.
const MAX_WAITING_CHECKS: usize = 100_000;

/// Most signatures the thread verifies in one batch (a batch costs about half as much per
/// signature as one by one).
const CHECK_BATCH: usize = 16;

/// A signature to verify: signer, signed bytes, signature.
type Check = (PublicKey, Vec<u8>, Signature);

/// What the thread has to do and what it made, shared with the nodes' signers.
#[derive(Default)]
struct Queues {
    signing: VecDeque<(u64, Box<Ed25519Signer>, Vec<u8>)>,
    checks: VecDeque<Check>,
    /// Signatures made, by request token, until their node takes them.
    made: BTreeMap<u64, Signature>,
    /// Requests whose node signed itself: the thread drops them.
    abandoned: BTreeSet<u64>,
    next_token: u64,
    closed: bool,
}

struct Work {
    queues: Mutex<Queues>,
    wake: Condvar,
    shared: Option<SharedVerified>,
}

impl Work {
    fn lock(&self) -> Option<MutexGuard<'_, Queues>> {
        self.queues.lock().ok()
    }

    /// Queues a signature to make; its token, or `None` if the thread is gone.
    fn sign(&self, key: Ed25519Signer, message: Vec<u8>) -> Option<u64> {
        let mut queues = self.lock().filter(|q| !q.closed)?;
        let token = queues.next_token;
        queues.next_token += 1;
        queues.signing.push_back((token, Box::new(key), message));
        self.wake.notify_one();
        Some(token)
    }

    /// The signature of request `token` if the thread made it; otherwise the thread will
    /// not (the caller signs).
    fn take(&self, token: u64) -> Option<Signature> {
        let mut queues = self.lock()?;
        let made = queues.made.remove(&token);
        if made.is_none() {
            queues.abandoned.insert(token);
        }
        made
    }

    /// Queues a signature to verify into the shared set, if there is one and room.
    fn check(&self, check: Check) {
        if self.shared.is_none() {
            return;
        }
        if let Some(mut queues) = self.lock()
            && queues.checks.len() < MAX_WAITING_CHECKS
        {
            queues.checks.push_back(check);
            self.wake.notify_one();
        }
    }

    /// The thread's loop: signing first, then checks, until closed.
    fn run(&self) {
        while let Some(job) = self.next_job() {
            match job {
                Job::Sign(token, key, message) => self.make(token, &key, message),
                Job::Check(checks) => {
                    // A bad signature is only left for the nodes to find.
                    if let Some(shared) = &self.shared {
                        shared.verify_many(&checks);
                    }
                }
            }
        }
    }

    fn next_job(&self) -> Option<Job> {
        let mut queues = self.lock()?;
        loop {
            if queues.closed {
                return None;
            }
            // Newest first: a node takes the oldest when they fall due and signs those the
            // thread has not made itself, so the two work from both ends of a burst instead of
            // making the same signatures side by side.
            while let Some((token, key, message)) = queues.signing.pop_back() {
                if !queues.abandoned.remove(&token) {
                    return Some(Job::Sign(token, key, message));
                }
            }
            if !queues.checks.is_empty() {
                let count = queues.checks.len().min(CHECK_BATCH);
                return Some(Job::Check(queues.checks.drain(..count).collect()));
            }
            queues = self.wake.wait(queues).ok()?;
        }
    }

    fn make(&self, token: u64, key: &Ed25519Signer, message: Vec<u8>) {
        let signature = key.sign_message(&message);
        let Some(mut queues) = self.lock() else { return };
        // A node that signed this itself has queued its check already.
        if queues.abandoned.remove(&token) {
            return;
        }
        queues.made.insert(token, signature);
        drop(queues);
        self.check((key.public_key(), message, signature));
    }
}

enum Job {
    Sign(u64, Box<Ed25519Signer>, Vec<u8>),
    /// Signatures verified in one batch.
    Check(Vec<Check>),
}

/// The thread that signs for the nodes of a simulation and verifies ahead of them. It ends
/// when dropped.
pub struct CryptoThread {
    work: Arc<Work>,
}

impl CryptoThread {
    /// Starts the thread; it verifies into `shared`, if given.
    pub fn start(shared: Option<SharedVerified>) -> std::io::Result<Self> {
        let work = Arc::new(Work { queues: Mutex::default(), wake: Condvar::new(), shared });
        let worker = Arc::clone(&work);
        thread::Builder::new().name("crypto".into()).spawn(move || worker.run())?;
        Ok(CryptoThread { work })
    }

    /// A signer with `keys` whose requests this thread signs.
    pub fn signer(&self, keys: Keyring) -> SimSigner {
        SimSigner { keys, work: Some(Arc::clone(&self.work)), waiting: VecDeque::new() }
    }
}

impl Drop for CryptoThread {
    fn drop(&mut self) {
        if let Some(mut queues) = self.work.lock() {
            queues.closed = true;
        }
        self.work.wake.notify_all();
    }
}

impl std::fmt::Debug for CryptoThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CryptoThread")
    }
}

/// A request taken by a [`SimSigner`], answered at `at`.
#[derive(Debug)]
struct Waiting {
    at: Time,
    token: u64,
    request: SignRequest,
}

/// A simulated node's keys. Alone it signs at once; from a [`CryptoThread`] it defers
/// requests to that thread.
pub struct SimSigner {
    keys: Keyring,
    work: Option<Arc<Work>>,
    /// Requests taken, in the order they are due.
    waiting: VecDeque<Waiting>,
}

impl SimSigner {
    /// A signer with `keys` that signs at once.
    pub fn new(keys: Keyring) -> Self {
        SimSigner { keys, work: None, waiting: VecDeque::new() }
    }

    /// Adds a key (a user who inserts through this node).
    pub fn add(&mut self, key: Ed25519Signer) -> PublicKey {
        self.keys.add(key)
    }
}

impl std::fmt::Debug for SimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimSigner").field("keys", &self.keys).field("waiting", &self.waiting.len()).finish()
    }
}

impl Signer for SimSigner {
    fn sign(&self, signer: &PublicKey, message: &[u8]) -> Result<Signature, SignError> {
        self.keys.sign(signer, message)
    }

    fn defer(&mut self, request: SignRequest, now: Time) -> Option<SignRequest> {
        // A key not held is refused at once, as without the thread.
        let (Some(work), Some(key)) = (&self.work, self.keys.get(&request.signer)) else {
            return Some(request);
        };
        let Some(token) = work.sign(key.clone(), request.message.clone()) else {
            return Some(request);
        };
        self.waiting.push_back(Waiting { at: now + SIGN_DELAY, token, request });
        None
    }

    fn next_answer_at(&self) -> Option<Time> {
        self.waiting.front().map(|w| w.at)
    }

    fn take_answer(&mut self, now: Time) -> Option<(SignId, Result<Signature, SignError>)> {
        if self.waiting.front()?.at > now {
            return None;
        }
        let Waiting { token, request, .. } = self.waiting.pop_front()?;
        let work = self.work.as_ref()?;
        if let Some(signature) = work.take(token) {
            return Some((request.id, Ok(signature)));
        }
        // The thread is behind: sign here, and leave the checking to it.
        let signature = self.keys.sign(&request.signer, &request.message);
        if let Ok(signature) = signature {
            work.check((request.signer, request.message, signature));
        }
        Some((request.id, signature))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn keyring(seed: u8) -> (Keyring, PublicKey) {
        let key = Ed25519Signer::from_seed([seed; 32]);
        let public = key.public_key();
        let mut keys = Keyring::new();
        keys.add(key);
        (keys, public)
    }

    #[test]
    fn deferred_requests_are_answered_after_the_delay_with_the_signature_a_node_would_make() {
        let thread = CryptoThread::start(None).expect("thread");
        let (keys, public) = keyring(3);
        let expected = keys.sign(&public, b"certificate").expect("own key");
        let mut signer = thread.signer(keys);
        let request = SignRequest { id: SignId(1), signer: public, message: b"certificate".to_vec() };
        let now = Time::ZERO;
        assert!(signer.defer(request, now).is_none(), "taken");
        assert_eq!(signer.next_answer_at(), Some(now + SIGN_DELAY));
        assert!(signer.take_answer(now).is_none(), "not before the delay");
        assert_eq!(signer.take_answer(now + SIGN_DELAY), Some((SignId(1), Ok(expected))));
        assert_eq!(signer.next_answer_at(), None);
        let unknown = SignRequest { id: SignId(2), signer: keyring(4).1, message: vec![1] };
        assert!(signer.defer(unknown, now).is_some(), "a key not held is refused at once");
    }

    #[test]
    fn the_thread_verifies_what_it_signs_into_the_shared_set_and_only_good_signatures_are_held() {
        let shared = SharedVerified::new();
        let thread = CryptoThread::start(Some(shared.clone())).expect("thread");
        let (keys, public) = keyring(7);
        let mut signer = thread.signer(keys);
        let request = SignRequest { id: SignId(1), signer: public, message: b"receipt".to_vec() };
        assert!(signer.defer(request, Time::ZERO).is_none());
        let (_, signature) = signer.take_answer(Time::ZERO + SIGN_DELAY).expect("due");
        let signature = signature.expect("own key");
        let started = Instant::now();
        while !shared.holds_signature(&public, b"receipt", &signature) {
            assert!(started.elapsed() < Duration::from_secs(10), "the thread never verified the signature");
            thread::yield_now();
        }
        assert!(!shared.holds_signature(&public, b"receipt!", &signature), "other bytes were not verified");
        let mut forged = signature;
        forged.0[40] ^= 1;
        assert!(!shared.verify(&public, b"receipt", &forged));
        assert!(!shared.holds_signature(&public, b"receipt", &forged), "a bad signature is never held");
    }
}
