//! Issue 9, budget exhaustion attack: in a network of 6 honest nodes, one authenticated
//! malicious peer keeps sending the victim Pastry messages (`LeafSet`, `RowReply`,
//! `NewNode`) naming 10,000 made-up ids for 10 simulated minutes. The victim's core wants to
//! probe them; the peer manager charges those attempts to the peer that named the ids.
//!
//! Bound, from `Limits::default()`: at most `introducer_in_flight` (6) attempts on one
//! introducer's hearsay are unresolved at once, and once `introducer_failures` (4) of them
//! have failed (with no successes) its hearsay is no longer tried: attempts start while at
//! most 3 have failed, with at most 6 in flight, so 3 + 6 = 9 for the attacker's ids. The
//! test allows `introducer_in_flight + introducer_failures + 2` = 12 (the 2 for ids whose
//! introducer record was forgotten, charged to the anonymous introducer). Honest nodes that
//! hear of the made-up ids from the victim (its core passes `NewNode` on) are held to the
//! same bound.
//! It also checks that the honest peers stay connected to the victim and that routing
//! between honest nodes still works.

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::Net;
use past_core::wire::Message;
use past_core::{Config, Entry, Id, Rtt};
use past_link::ManagerConfig;
use past_link::manager::Limits;

const VICTIM: usize = 0;
const HONEST: std::ops::Range<usize> = 0..6;
const ATTACKER: usize = 6;

fn made_up_ids(victim: Id, count: usize) -> Vec<Id> {
    (0..count as u128)
        .map(|k| {
            if k % 2 == 0 {
                // Close to the victim on both sides: leaf set candidates.
                let offset = (k / 2 + 1) * (1u128 << 100);
                if k % 4 == 0 {
                    Id::from_u128(victim.as_u128().wrapping_add(offset))
                } else {
                    Id::from_u128(victim.as_u128().wrapping_sub(offset))
                }
            } else {
                // Anywhere: routing table candidates.
                let mut x = k.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
                x ^= x >> 61;
                Id::from_u128(x.wrapping_mul(0xD6E8_FEB8_6659_FD93_3C6E_F372_FE94_F82B))
            }
        })
        .collect()
}

#[test]
fn made_up_ids_cost_the_victim_a_bounded_number_of_connections() {
    let limits = Limits::default();
    let bound = (limits.introducer_in_flight + limits.introducer_failures + 2) as usize;
    let mut net = Net::stacks(7, 61, &Config::default(), &ManagerConfig::default());
    for i in 0..7 {
        net.join(i);
        net.run_for(Duration::from_secs(1));
    }
    net.run_for(Duration::from_secs(10));
    assert!(net.all_joined(0..7));
    if net.links(ATTACKER, VICTIM).is_empty() {
        let victim = net.id(VICTIM);
        net.with(ATTACKER, |s, now| s.connect(victim, now));
        net.run_for(Duration::from_secs(1));
    }
    assert!(!net.links(ATTACKER, VICTIM).is_empty());
    let victim = net.id(VICTIM);
    let fake = made_up_ids(victim, 10_000);
    let fake_set: BTreeSet<Id> = fake.iter().copied().collect();
    let honest: Vec<Id> = HONEST.map(|i| net.id(i)).collect();
    let created_before: Vec<usize> = (0..7).map(|i| net.nodes[i].creates.len()).collect();
    let start = net.now;
    let mut chunks = fake.chunks(100).cycle();
    let mut round = 0u32;
    let mut lost = Vec::new();
    while net.now < start + Duration::from_secs(600) {
        let chunk = chunks.next().expect("cycle").to_vec();
        net.inject(ATTACKER, VICTIM, &Message::LeafSet { leaves: chunk.clone(), answer: false });
        let entries = chunk[..16].iter().map(|&id| Entry { id, rtt: Rtt::from_micros(1) }).collect();
        net.inject(ATTACKER, VICTIM, &Message::RowReply { row: (round % 3) as u8, entries });
        net.inject(ATTACKER, VICTIM, &Message::NewNode { id: chunk[16], row: 0 });
        round += 1;
        net.run_for(Duration::from_secs(2));
        for &peer in &honest[1..] {
            if !net.manager(VICTIM).is_open(peer) {
                lost.push((net.now, peer));
            }
        }
        if net.links(ATTACKER, VICTIM).is_empty() {
            // The victim dropped the attacker: it reconnects (it is authenticated).
            net.with(ATTACKER, |s, now| s.connect(victim, now));
            net.run_for(Duration::from_secs(1));
        }
    }
    let for_fake = net.nodes[VICTIM].creates_for(&fake_set);
    let total = net.nodes[VICTIM].creates.len() - created_before[VICTIM];
    let others: Vec<usize> = (1..6).map(|i| net.nodes[i].creates_for(&fake_set)).collect();
    println!(
        "attack, 10 minutes, 10,000 made-up ids: the victim created {for_fake} connections for made-up ids \
         ({total} in all during the attack, bound {bound}); honest nodes created {others:?} for made-up ids"
    );
    assert!(for_fake <= bound, "{for_fake} connections for made-up ids, bound {bound}");
    assert!(others.iter().all(|&n| n <= bound), "honest nodes spent {others:?} on made-up ids");
    assert!(lost.is_empty(), "honest peers lost their connection to the victim: {lost:?}");
    // Routing between honest nodes works.
    for i in HONEST {
        for j in HONEST {
            if i != j {
                net.route(i, honest[j], &format!("{i}->{j}"));
            }
        }
    }
    net.run_for(Duration::from_secs(5));
    let mut missing = Vec::new();
    for i in HONEST {
        for j in HONEST {
            if i != j && net.delivered(j, &format!("{i}->{j}")) != 1 {
                missing.push(format!("{i}->{j}"));
            }
        }
    }
    assert!(missing.is_empty(), "not delivered: {missing:?}");
}
