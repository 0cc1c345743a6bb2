//! Whether the peer of an open connection still reads what we send: a peer that stopped is
//! found within seconds, and the messages it never read go back to the node.
//!
//! A data channel stays open for tens of seconds after the tab at its other end froze,
//! crashed or lost its network (until ICE consent fails), and whatever is sent on it
//! meanwhile is lost without a word: a lookup forwarded there waits out its request
//! timeout. So after a routed or direct message the manager sends a ping
//! ([`frame::PING`]) behind it, one at a time per connection; the peer answers at once, and
//! since the channel is ordered, its pong shows it read everything sent before the ping.
//! Until then the manager keeps a copy of those messages (bounded; larger ones, content,
//! are not kept: their senders have stall timers of their own).
//!
//! A peer that neither answers nor sends anything for [`ManagerConfig::confirm_timeout`]
//! after the ping (plus the time the bytes queued ahead of the ping take at
//! [`ManagerConfig::confirm_rate`]) is taken for failed: the connection closes and the
//! messages not confirmed come back to the node as [`PeerEvent::SendFailed`], which routes
//! them around the peer. So do those of a connection that closes under us or whose node
//! the core finds failed. A peer that had read one gets it twice; Pastry and PAST take a
//! repeated message as they take a retry.

use super::*;

/// Most messages kept per connection until the peer confirms them; more are sent without
/// a copy (lost if the peer is, as they would be without this).
const MAX_KEPT: usize = 64;
/// Most bytes of messages kept per connection.
const MAX_KEPT_BYTES: usize = 256 * 1024;
/// A message over this many bytes on the wire is not kept.
const MAX_KEPT_MESSAGE: usize = 16 * 1024;

/// The messages of one connection the peer has not confirmed, and the ping that will.
#[derive(Debug, Default)]
pub(crate) struct Unconfirmed {
    /// Pings sent on the connection so far.
    pings: u64,
    /// The ping waiting for its pong.
    out: Option<Ping>,
    /// Bytes sent since the last pong: they may be queued ahead of the next ping.
    ahead: usize,
    /// Copies of the messages sent and not confirmed: the pings sent before each, its size.
    kept: VecDeque<(u64, Message<AppMessage>, usize)>,
    kept_bytes: usize,
}

/// A ping on its way.
#[derive(Clone, Copy, Debug)]
struct Ping {
    /// Its count among the connection's pings (the wire carries the low 32 bits).
    count: u64,
    sent: Time,
    /// Bytes sent before it that the pong may have to wait for.
    ahead: usize,
}

impl Unconfirmed {
    /// `bytes` went out on the connection.
    fn sent(&mut self, bytes: usize) {
        self.ahead = self.ahead.saturating_add(bytes);
    }

    /// Keeps a copy of `message`, just sent in `size` bytes, if it is worth one and room
    /// is left.
    fn keep(&mut self, message: &Message<AppMessage>, size: usize) {
        let worth = matches!(message, Message::Route(_) | Message::Direct(_)) && size <= MAX_KEPT_MESSAGE;
        if worth && self.kept.len() < MAX_KEPT && self.kept_bytes + size <= MAX_KEPT_BYTES {
            self.kept.push_back((self.pings, message.clone(), size));
            self.kept_bytes += size;
        }
    }

    /// Whether a ping should go now: messages wait for one and none is on its way.
    fn ping_due(&self) -> bool {
        self.out.is_none() && !self.kept.is_empty()
    }

    /// Notes a ping going out now; returns its number.
    fn ping(&mut self, now: Time) -> u32 {
        self.pings += 1;
        self.out = Some(Ping { count: self.pings, sent: now, ahead: self.ahead });
        self.pings as u32
    }

    /// The pong of `number` arrived: what was sent before its ping is confirmed.
    fn pong(&mut self, number: u32) {
        let Some(ping) = self.out.filter(|p| p.count as u32 == number) else { return };
        self.out = None;
        self.ahead = 0;
        while self.kept.front().is_some_and(|(before, _, _)| *before < ping.count) {
            if let Some((_, _, size)) = self.kept.pop_front() {
                self.kept_bytes -= size;
            }
        }
    }

    /// When the peer counts as failed if it stays silent, given when it was last heard.
    fn deadline(&self, last_heard: Time, config: &ManagerConfig) -> Option<Time> {
        let ping = self.out?;
        let rate = config.confirm_rate.max(1) as f64;
        let queued = Duration::from_secs_f64(ping.ahead as f64 / rate);
        Some(ping.sent.max(last_heard) + config.confirm_timeout + queued)
    }

    /// Takes the messages not confirmed, oldest first.
    fn take(&mut self) -> impl Iterator<Item = Message<AppMessage>> + use<> {
        self.kept_bytes = 0;
        std::mem::take(&mut self.kept).into_iter().map(|(_, message, _)| message)
    }
}

impl PeerManager {
    /// `message` went out to `to` as `bytes` bytes: keep a copy until the peer confirms it,
    /// and ping it if no ping is on its way.
    pub(super) fn sent_on(&mut self, to: Id, message: &Message<AppMessage>, bytes: usize, now: Time) {
        let Some(c) = self.peers.get_mut(&to).and_then(|p| p.conn.as_mut()).filter(|c| c.is_open()) else {
            return;
        };
        c.unconfirmed.sent(bytes);
        c.unconfirmed.keep(message, bytes);
        if c.unconfirmed.ping_due() {
            let number = c.unconfirmed.ping(now);
            self.commands.push_back(Command::Send { conn: c.id, bytes: frame::encode_ping(number) });
        }
    }

    /// The peer of open connection `conn` pinged us: answer at once.
    pub(super) fn on_ping(&mut self, peer: Id, number: u32, now: Time) {
        let Some(c) = self.peers.get_mut(&peer).and_then(|p| p.conn.as_mut()) else { return };
        c.last_heard = now;
        self.commands.push_back(Command::Send { conn: c.id, bytes: frame::encode_pong(number) });
    }

    /// The peer answered our ping: what went before it is confirmed; what went after it
    /// waits for the next ping, sent now.
    pub(super) fn on_pong(&mut self, peer: Id, number: u32, now: Time) {
        let Some(c) = self.peers.get_mut(&peer).and_then(|p| p.conn.as_mut()) else { return };
        c.last_heard = now;
        c.unconfirmed.pong(number);
        if c.unconfirmed.ping_due() {
            let number = c.unconfirmed.ping(now);
            self.commands.push_back(Command::Send { conn: c.id, bytes: frame::encode_ping(number) });
        }
    }

    /// When the next open connection's peer counts as failed if it stays silent.
    pub(super) fn next_silence(&self) -> Option<Time> {
        self.open_conns().filter_map(|c| c.unconfirmed.deadline(c.last_heard, &self.config)).min()
    }

    /// Closes the connections whose peers stayed silent past their deadline; the messages
    /// they did not confirm go back to the node.
    pub(super) fn drop_silent(&mut self, now: Time) {
        let silent: Vec<Id> = self
            .peers
            .iter()
            .filter_map(|(id, p)| p.conn.as_ref().filter(|c| c.is_open()).map(|c| (id, c)))
            .filter(|(_, c)| c.unconfirmed.deadline(c.last_heard, &self.config).is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for peer in silent {
            self.stats.silent += 1;
            let what = "the peer stopped answering: no pong and nothing else from it in time";
            self.note_trouble(peer, what.to_string(), now);
            self.drop_failed(peer, what, true, now);
        }
    }

    /// Ends the open connection to a peer that failed (see [`PeerManager::drop_conn`]); the
    /// messages it did not confirm go back to the node, to be routed another way.
    pub(super) fn drop_failed(&mut self, peer: Id, reason: &str, tombstone: bool, now: Time) {
        let unconfirmed: Vec<_> = self
            .peers
            .get_mut(&peer)
            .and_then(|p| p.conn.as_mut())
            .map(|c| c.unconfirmed.take().collect())
            .unwrap_or_default();
        self.drop_conn(peer, reason, tombstone, now);
        self.events.extend(unconfirmed.into_iter().map(|message| PeerEvent::SendFailed {
            to: peer,
            message,
            peer_failed: true,
        }));
    }

    fn open_conns(&self) -> impl Iterator<Item = &Conn> + '_ {
        self.peers.values().filter_map(|p| p.conn.as_ref()).filter(|c| c.is_open())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(n: u8) -> Message<AppMessage> {
        Message::Direct(AppMessage::Payload(crate::app::Payload { origin: Id::ZERO, text: false, data: vec![n] }))
    }

    fn at(ms: u64) -> Time {
        Time::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn a_pong_confirms_what_went_before_its_ping_and_nothing_after() {
        let mut u = Unconfirmed::default();
        u.sent(100);
        u.keep(&lookup(1), 100);
        assert!(u.ping_due());
        let first = u.ping(at(0));
        u.sent(100);
        u.keep(&lookup(2), 100);
        assert!(!u.ping_due(), "one ping at a time");
        u.pong(first.wrapping_add(1));
        assert_eq!(u.kept.len(), 2, "a pong of another number confirms nothing");
        u.pong(first);
        assert_eq!(u.take().collect::<Vec<_>>(), vec![lookup(2)]);
    }

    #[test]
    fn the_deadline_waits_for_the_bytes_ahead_and_for_news_from_the_peer() {
        let config =
            ManagerConfig { confirm_timeout: Duration::from_secs(3), confirm_rate: 1000, ..Default::default() };
        let mut u = Unconfirmed::default();
        assert_eq!(u.deadline(at(0), &config), None, "no ping, no deadline");
        u.sent(2000);
        u.keep(&lookup(1), 2000);
        u.ping(at(1000));
        assert_eq!(u.deadline(at(0), &config), Some(at(6000)), "3 s after the ping, plus 2 s for 2,000 bytes");
        assert_eq!(u.deadline(at(4000), &config), Some(at(9000)), "counted from the last news from the peer");
    }

    #[test]
    fn content_and_probes_are_not_kept() {
        let mut u = Unconfirmed::default();
        u.keep(&lookup(1), MAX_KEPT_MESSAGE + 1);
        u.keep(&Message::Leave, 10);
        assert!(!u.ping_due());
        for n in 0..MAX_KEPT + 5 {
            u.keep(&lookup(n as u8), 10);
        }
        assert_eq!(u.kept.len(), MAX_KEPT);
    }
}
