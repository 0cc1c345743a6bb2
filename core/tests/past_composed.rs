//! PAST inside a larger application: a host whose messages wrap PAST's next to messages of
//! its own (as a browser or native node's stack has overlay signals and payloads) runs PAST
//! through `Narrow`, and inserts and lookups work as with PAST alone.

use past_core::past::*;
use past_core::{Application, Config, Forward, Id, Narrow, Net, Node, Time};

/// The host's messages: PAST's (boxed: they are large), or a note of its own.
#[derive(Clone, Debug)]
enum Wrapped {
    Past(Box<PastMessage>),
    Note(u8),
}

impl From<PastMessage> for Wrapped {
    fn from(message: PastMessage) -> Self {
        Wrapped::Past(Box::new(message))
    }
}

struct Host {
    past: SyncPast<MemoryStore, Ed25519Signer>,
    notes: Vec<u8>,
}

impl Application for Host {
    type Message = Wrapped;

    fn deliver(&mut self, net: &mut dyn Net<Wrapped>, key: Id, message: Wrapped, hops: u8) {
        match message {
            Wrapped::Past(message) => self.past.deliver(&mut Narrow(net), key, *message, hops),
            Wrapped::Note(note) => self.notes.push(note),
        }
    }

    fn forward(&mut self, net: &mut dyn Net<Wrapped>, key: Id, message: &mut Wrapped, next: Id) -> Forward {
        match message {
            Wrapped::Past(message) => self.past.forward(&mut Narrow(net), key, message, next),
            Wrapped::Note(_) => Forward::Continue,
        }
    }

    fn receive(&mut self, net: &mut dyn Net<Wrapped>, from: Id, message: Wrapped) {
        if let Wrapped::Past(message) = message {
            self.past.receive(&mut Narrow(net), from, *message);
        }
    }

    fn send_failed(&mut self, net: &mut dyn Net<Wrapped>, to: Id, message: Wrapped) {
        if let Wrapped::Past(message) = message {
            self.past.send_failed(&mut Narrow(net), to, *message);
        }
    }

    fn leaf_set_changed(&mut self, net: &mut dyn Net<Wrapped>) {
        self.past.leaf_set_changed(&mut Narrow(net));
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.past.poll_timeout()
    }

    fn timeout(&mut self, net: &mut dyn Net<Wrapped>) {
        self.past.timeout(&mut Narrow(net));
    }
}

impl PastHost for Host {
    fn past(&self) -> &Past {
        &self.past.past
    }
    fn past_mut(&mut self) -> &mut Past {
        &mut self.past.past
    }
    fn pump(&mut self, net: &mut dyn Net<PastMessage>) {
        self.past.complete(net);
    }
}

#[test]
fn past_runs_inside_a_host_with_messages_of_its_own() {
    let key = Ed25519Signer::from_seed([9; 32]);
    let (public, id) = (key.public_key(), key.node_id());
    let mut store = MemoryStore::new();
    let content = b"PAST inside a larger application".to_vec();
    store.add_upload(UploadId(1), content.clone());
    let host = Host { past: SyncPast::new(Past::new(PastConfig::new(public, 1 << 20)), store, key), notes: Vec::new() };
    let mut node = Node::new(id, Config::with_seed(3), host);
    let now = Time::ZERO;
    node.join(None, now);

    let spec = InsertRequestSpec {
        name: "composed".into(),
        owner: public,
        k: 1,
        upload: UploadId(1),
        size: content.len() as u64,
        created: 0,
    };
    node.insert(spec, now).expect("insert starts");
    let Some(PastEvent::InsertDone { result: Ok(inserted), .. }) = node.poll_past_event() else {
        panic!("the insert did not complete")
    };
    assert_eq!(inserted.receipts.len(), 1);

    node.lookup(inserted.certificate.body.file, now);
    let (mut got, mut done) = (Vec::new(), false);
    while let Some(event) = node.poll_past_event() {
        match event {
            PastEvent::LookupChunk { data, .. } => got.extend(data),
            PastEvent::LookupDone { result, .. } => done = result.is_ok(),
            _ => {}
        }
    }
    assert!(done, "the lookup did not succeed");
    assert_eq!(got, content);

    // The host's own messages still reach it (routed to this node, the only one).
    node.route(id, Wrapped::Note(7), now);
    assert_eq!(node.app().notes, vec![7]);
}
