//! A node whose connection died silently (no FIN, no RST: a laptop lid, a NAT that forgot
//! the mapping) must get its id back within seconds. Before the fix its reconnect got
//! `peer_id_taken` for as long as the dead socket stayed open, i.e. forever.
//!
//! A dead socket here is one the client keeps open but never reads again: the server's
//! pings go unanswered.

mod hostile;

use std::time::{Duration, Instant};

use hostile::{HONEST, Key, TestServer, health, raw_close_code, register_honest, small_config, try_register};
use past_signaling::Config;

fn config() -> Config {
    // A live client answers a ping every second: a socket silent for 1.5 s has missed one.
    Config { ping_interval: Duration::from_secs(1), idle_timeout: Duration::from_secs(3), ..small_config() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconnect_of_a_node_whose_socket_died_gets_its_id_back() {
    let server = TestServer::start(config());
    let key = Key::new(7);
    let (dead, _) = register_honest(server.addr(), &key).await;
    let died = Instant::now();

    // While the old socket was heard from moments ago, the id stays taken.
    match try_register(HONEST, server.addr(), &key).await {
        Err(refusal) => assert!(refusal.contains("PeerIdTaken"), "{refusal}"),
        Ok(_) => panic!("a live registration was replaced"),
    }
    // The node retries; once the old socket has missed a ping, the new one replaces it.
    let (mut alive, took) = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(ws) = try_register(HONEST, server.addr(), &key).await {
                return (ws, died.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the id comes back");
    eprintln!("id back {took:?} after the connection died");
    assert!(took < Duration::from_secs(3), "the id came back only after {took:?}");

    // The old socket was closed as replaced (1008); the new one is registered.
    assert_eq!(raw_close_code(dead, Duration::from_secs(5)).await, Some(1008));
    assert_eq!(health(server.addr()).await["peers"], 1);
    let _ = alive.close(None).await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_registered_socket_is_closed_after_the_idle_timeout() {
    let server = TestServer::start(config());
    let (dead, _) = register_honest(server.addr(), &Key::new(8)).await;
    let died = Instant::now();
    let gone = tokio::time::timeout(Duration::from_secs(6), async {
        loop {
            if health(server.addr()).await["peers"] == 0 {
                return died.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the silent socket is closed");
    eprintln!("silent socket closed {gone:?} after its last frame");
    assert!(gone >= Duration::from_millis(2_500), "closed before the idle timeout: {gone:?}");
    assert_eq!(raw_close_code(dead, Duration::from_secs(5)).await, Some(1001), "closed as idle");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_answers_pings_stays_registered() {
    let server = TestServer::start(Config {
        ping_interval: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(700),
        ..small_config()
    });
    let (mut ws, _) = register_honest(server.addr(), &Key::new(9)).await;
    // Reading is all it takes: tungstenite answers each ping with a pong.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if let Ok(Some(frame)) =
            tokio::time::timeout(Duration::from_millis(100), futures::StreamExt::next(&mut ws)).await
        {
            assert!(frame.expect("no error").is_ping(), "only pings arrive");
        }
    }
    assert_eq!(health(server.addr()).await["peers"], 1, "still registered after three idle timeouts");
    server.stop();
}
