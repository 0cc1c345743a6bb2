//! Measurement, ignored by default: native-to-native insert and get of a large file between
//! three nodes of one process on loopback, with the process's peak resident memory, beside a
//! bare `webrtc` data channel carrying the same number of bytes in the same process (before
//! the insert and after the get). Run with
//! `cargo test -p past-node --release --test throughput -- --ignored --nocapture` (size in
//! MiB from `PAST_MIB`, default 100). The test that is not ignored checks the bare channel
//! itself on 4 MiB: every byte arrives, in order, with either pacing.

mod common;

use std::time::{Duration, Instant};

use common::{content, holders, memory, progress, ring};
use past_node::files::InsertOptions;
use past_signaling::{Config, ServerHandle};

/// A bare `webrtc` data channel between two peer connections of this process, set up like
/// the node's transport (`node-native/src/transport.rs`): sockets on 127.0.0.1, no ICE
/// servers, mDNS off, one ordered reliable channel. The baseline the node's transfers are
/// compared with.
mod raw {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::BytesMut;
    use rtc::ice::mdns::MulticastDnsMode;
    use tokio::sync::{mpsc, watch};
    use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
    use webrtc::peer_connection::{
        PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
        RTCIceGatheringState, RTCSessionDescription, SettingEngineBuilder,
    };

    /// Message size: the node's chunk size.
    pub(crate) const MESSAGE: usize = 64 * 1024;

    /// How the sender keeps its buffer small.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Pacing {
        /// As the browser benchmark does: send while at most 256 KiB is outstanding, then
        /// wait for the buffered amount to fall to 64 KiB (`OnBufferedAmountLow`).
        LowThreshold,
        /// As the node's transport does: a send-buffer limit of 1 MiB, `send` waits for room.
        SendLimit,
    }

    struct Handler {
        gathered: watch::Sender<bool>,
        channels: mpsc::UnboundedSender<Arc<dyn DataChannel>>,
    }

    #[async_trait::async_trait]
    impl PeerConnectionEventHandler for Handler {
        async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
            if state == RTCIceGatheringState::Complete {
                let _ = self.gathered.send(true);
            }
        }

        async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
            let _ = self.channels.send(channel);
        }
    }

    struct Peer {
        pc: Arc<dyn PeerConnection>,
        gathered: watch::Receiver<bool>,
        channels: mpsc::UnboundedReceiver<Arc<dyn DataChannel>>,
    }

    async fn peer(pacing: Pacing) -> Peer {
        let (gathered_tx, gathered) = watch::channel(false);
        let (channels_tx, channels) = mpsc::unbounded_channel();
        let handler = Handler { gathered: gathered_tx, channels: channels_tx };
        let settings = SettingEngineBuilder::new().with_multicast_dns_mode(MulticastDnsMode::Disabled).build();
        let mut builder = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(settings)
            .with_handler(Arc::new(handler))
            .with_udp_addrs(vec!["127.0.0.1:0".to_string()]);
        if let Pacing::SendLimit = pacing {
            builder = builder.with_data_channel_send_buffer_limit(1024 * 1024);
        }
        let pc: Arc<dyn PeerConnection> = Arc::new(builder.build().await.expect("a peer connection"));
        Peer { pc, gathered, channels }
    }

    /// Sets `description` locally, waits for ICE gathering, returns the SDP with candidates.
    async fn local(peer: &mut Peer, description: RTCSessionDescription) -> String {
        peer.pc.set_local_description(description).await.expect("local description");
        let _ = tokio::time::timeout(Duration::from_secs(3), peer.gathered.wait_for(|done| *done)).await;
        peer.pc.local_description().await.expect("a local description").sdp
    }

    /// Sends `total` bytes in 64 KiB messages from one peer connection to the other; the
    /// time from the first send to the last byte received. Checks every byte received (each
    /// message is filled with its index).
    pub(crate) async fn transfer(total: u64, pacing: Pacing) -> Duration {
        let (mut a, mut b) = (peer(pacing).await, peer(pacing).await);
        let init = RTCDataChannelInit { ordered: true, ..Default::default() };
        let channel = a.pc.create_data_channel("raw", Some(init)).await.expect("a data channel");
        let offer = a.pc.create_offer(None).await.expect("an offer");
        let offer = local(&mut a, offer).await;
        b.pc.set_remote_description(RTCSessionDescription::offer(offer).expect("SDP")).await.expect("offer");
        let answer = b.pc.create_answer(None).await.expect("an answer");
        let answer = local(&mut b, answer).await;
        a.pc.set_remote_description(RTCSessionDescription::answer(answer).expect("SDP")).await.expect("answer");
        let incoming = b.channels.recv().await.expect("the channel arrives");
        let receiver = tokio::spawn(async move {
            let (mut got, mut expected) = (0u64, 0u8);
            while let Some(event) = incoming.poll().await {
                if let DataChannelEvent::OnMessage(message) = event {
                    // A message is one 64 KiB send filled with its index (mod 256).
                    assert!(message.data.iter().all(|&x| x == expected), "a message arrived out of order or altered");
                    expected = expected.wrapping_add(1);
                    got += message.data.len() as u64;
                    if got >= total {
                        return (Instant::now(), got);
                    }
                }
            }
            (Instant::now(), got)
        });
        while !matches!(channel.poll().await.expect("the channel opens"), DataChannelEvent::OnOpen) {}
        channel.set_buffered_amount_low_threshold(64 * 1024).await.expect("threshold");
        let started = Instant::now();
        let (mut sent, mut index) = (0u64, 0u8);
        while sent < total {
            let len = (total - sent).min(MESSAGE as u64) as usize;
            if let Pacing::LowThreshold = pacing {
                while channel.outstanding_bytes().await.expect("open") > 256 * 1024 {
                    // The event, or a 10 ms backstop should the event have fired already.
                    let _ = tokio::time::timeout(Duration::from_millis(10), async {
                        while !matches!(channel.poll().await, Some(DataChannelEvent::OnBufferedAmountLow) | None) {}
                    })
                    .await;
                }
            }
            channel.send(BytesMut::from(&vec![index; len][..])).await.expect("send");
            sent += len as u64;
            index = index.wrapping_add(1);
        }
        let (done, got) = receiver.await.expect("the receiver");
        assert_eq!(got, total, "every byte arrives");
        let _ = a.pc.close().await;
        let _ = b.pc.close().await;
        done - started
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
async fn throughput() {
    let mib: usize = std::env::var("PAST_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let url = server.ws_url();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let nodes = ring(&url, dir.path(), 1..=3, 1 << 40).await;
    let handles: Vec<_> = nodes.iter().map(|n| &n.handle).collect();

    let bytes = (mib as u64) << 20;
    let raw_before = raw::transfer(bytes, raw::Pacing::LowThreshold).await;
    let raw_limit = raw::transfer(bytes, raw::Pacing::SendLimit).await;

    let source = dir.path().join("big.bin");
    {
        // Written 1 MiB at a time, so the peak memory reflects the node only.
        use std::io::Write as _;
        let mut file = std::fs::File::create(&source).expect("create");
        for i in 0..mib {
            file.write_all(&content(1 << 20, i as u64 + 11)).expect("write");
        }
    }
    let before = memory("self").mib();
    let started = Instant::now();
    let (tx, _) = progress();
    let inserted = nodes[0].handle.insert(&source, InsertOptions { k: 1, encrypt: true }, tx).await.expect("insert");
    let insert = started.elapsed();
    let holder = holders(&handles, &inserted.file_id).await;
    let reader = nodes.iter().find(|n| !holder.contains(&n.handle.id().to_string())).expect("a node without it");
    let after_insert = memory("self").mib();
    let started = Instant::now();
    let (tx, _) = progress();
    let out = dir.path().join("out.bin");
    reader.handle.get(&inserted.link, Some(&out), tx).await.expect("get");
    let get = started.elapsed();
    let after_get = memory("self").mib();
    let raw_after = raw::transfer(bytes, raw::Pacing::LowThreshold).await;
    let rate = |d: Duration| mib as f64 * 1.048_576 / d.as_secs_f64();
    let raw_mean = (rate(raw_before) + rate(raw_after)) / 2.0;
    eprintln!(
        "{mib} MiB, encrypted, k = 1, holder {}, inserter {}, reader {}:\n  insert {insert:.2?} ({:.1} MB/s)\n  \
         get {get:.2?} ({:.1} MB/s, {:.0} % of the bare channel)\n  bare webrtc data channel, 64 KiB messages: \
         {:.1} MB/s before the insert, {:.1} MB/s after the get (paused above 256 KiB, resumed at 64 KiB); \
         {:.1} MB/s with the node's 1 MiB send-buffer limit\n  memory MiB (current, peak): before {before:?}, after insert {after_insert:?}, \
         after get {after_get:?}",
        &holder[0][..8],
        &nodes[0].handle.id().as_str()[..8],
        &reader.handle.id().as_str()[..8],
        rate(insert),
        rate(get),
        100.0 * rate(get) / raw_mean,
        rate(raw_before),
        rate(raw_after),
        rate(raw_limit),
    );
    assert_eq!(std::fs::metadata(&out).expect("output").len(), (mib << 20) as u64);
    for node in &nodes {
        node.handle.shutdown().await;
    }
    server.shutdown().await.expect("server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_channel_delivers_every_byte_in_order() {
    for pacing in [raw::Pacing::LowThreshold, raw::Pacing::SendLimit] {
        // 4 MiB and a partial last message.
        raw::transfer((4 << 20) + 1000, pacing).await;
    }
}
