//! Attack: one address registers as many throwaway keys as it can and then sits on them,
//! never reading (so never answering a ping). Before the fix they stayed forever and new
//! nodes got `server_full`. Now an address holds at most its share of registered peers, and
//! a registered socket that answers no ping is closed after the idle timeout.

mod hostile;

use std::time::{Duration, Instant};

use hostile::{HOSTILE, Key, TestServer, health, honest_nodes_register_and_relay, small_config, try_register};
use past_signaling::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throwaway_registrations_are_capped_per_address_and_expire_when_silent() {
    let idle_timeout = Duration::from_secs(1);
    let server =
        TestServer::start(Config { ping_interval: Duration::from_millis(250), idle_timeout, ..small_config() });
    let addr = server.addr();

    // 100 throwaway keys; every socket is kept open and never read.
    let mut kept = Vec::new();
    let (mut registered, mut refused) = (0, 0);
    for n in 0..100 {
        match try_register(HOSTILE, addr, &Key::new(n)).await {
            Ok(ws) => {
                registered += 1;
                kept.push(ws);
            }
            Err(_) => refused += 1,
        }
    }
    let attack_done = Instant::now();
    eprintln!("attacker: {registered} keys registered, {refused} refused");
    assert_eq!(registered, 8, "the address's share of registered peers");

    honest_nodes_register_and_relay(addr, 0).await;

    // The throwaways answer no ping: they are closed and their ids freed.
    let freed = tokio::time::timeout(idle_timeout + Duration::from_secs(3), async {
        loop {
            if health(addr).await["peers"] == 0 {
                return attack_done.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the silent registrations expire");
    eprintln!("silent registrations gone {freed:?} after the attack");

    // And the address may register again (its share is back), as may honest nodes.
    assert!(try_register(HOSTILE, addr, &Key::new(500)).await.is_ok());
    honest_nodes_register_and_relay(addr, 1).await;
    drop(kept);
    server.stop();
}
