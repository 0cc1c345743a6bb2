//! Attack: one address keeps as many WebSockets open as it can without ever registering,
//! reopening them as the server closes them. Before the fix every socket counted against one
//! cap (`max_peers` + 64), so ~1,100 of them made every honest registration fail with 503.
//! Now unregistered sockets have a pool of their own, with a per-address share.

mod hostile;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use hostile::{HOSTILE, TestServer, health, honest_nodes_register_and_relay, small_config, ws_from};
use past_signaling::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_sockets_from_one_address_leave_room_for_honest_nodes() {
    let server = TestServer::start(Config { register_timeout: Duration::from_millis(500), ..small_config() });
    let addr = server.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let (opened, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut attackers = Vec::new();
    for _ in 0..32 {
        let (stop, opened, refused) = (stop.clone(), opened.clone(), refused.clone());
        attackers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match ws_from(HOSTILE, addr, None).await {
                    Ok(mut ws) => {
                        opened.fetch_add(1, Ordering::Relaxed);
                        // Never register; wait for the server to close it, then reopen.
                        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(100), ws.next()).await {}
                        while !stop.load(Ordering::Relaxed) {
                            if let Ok(None | Some(Err(_))) =
                                tokio::time::timeout(Duration::from_millis(100), ws.next()).await
                            {
                                break;
                            }
                        }
                    }
                    Err(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(25)).await;
                    }
                }
            }
        }));
    }
    // The attack holds its share, then honest nodes come, three times over. The server's own
    // count is the one to check: an attacker learns of a close only when it reads it, so its
    // own count of open sockets may lag behind the server's.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut held_max = 0;
    for round in 0..3 {
        honest_nodes_register_and_relay(addr, round).await;
        let open = health(addr).await;
        let unregistered = open["unregistered"].as_u64().expect("a count");
        held_max = held_max.max(unregistered);
        assert!(unregistered <= 4, "the attacker holds its share only: {open}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.await.expect("the attacker task");
    }
    let (opened, refused) = (opened.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    eprintln!("attacker: {opened} sockets opened, {refused} refused, at most {held_max} open at the server's checks");
    assert!(held_max > 0, "the attack held sockets while honest nodes registered");
    assert!(opened > 4, "the server closed the unregistered sockets and the attacker reopened them: {opened}");
    assert!(refused > 0, "the attacker was refused beyond its share");
    server.stop();
}
