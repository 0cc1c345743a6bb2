//! Rate-limited logging of what happens to many clients at once: refusals (over a cap, other
//! origins, accept failures), closes (idle, violations, bad frames) and arrivals and
//! departures are counted here, and [`Stats::flush`] writes at most two summary lines per
//! interval (one WARN line for refusals and abuse, one INFO line for ordinary comings and
//! goings), instead of one line per event. Each misbehaving client also gets at most one
//! line of its own per interval ([`crate::conduct`]), within a budget of
//! [`crate::Config::log_lines_per_interval`] lines per interval; the clients beyond it are
//! folded into the WARN line.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// What is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A TCP connection closed at once: its address held its share of HTTP connections.
    ConnPerAddress,
    /// A TCP connection closed at once: the server held its maximum of HTTP connections.
    ConnGlobal,
    /// `accept` failed for a reason other than the connection itself (e.g. out of file
    /// descriptors).
    AcceptError,
    /// An HTTP connection closed because its headers did not arrive in time.
    HeaderTimeout,
    /// An HTTP connection ended with an error (malformed request, reset).
    HttpError,
    /// A WebSocket handshake from another origin (403).
    WsOrigin,
    /// A WebSocket handshake over the per-address share of unregistered sockets (429).
    WsPerAddress,
    /// A WebSocket handshake over the pool of unregistered sockets (503).
    WsGlobal,
    /// A request to `/ws` that is not a valid WebSocket handshake (400).
    WsBadHandshake,
    /// A registration refused: the server holds `max_peers`.
    RegisterFull,
    /// A registration refused: the address holds its share of registered peers.
    RegisterAddressFull,
    /// A socket closed (1008) for its violations.
    ClosedViolations,
    /// A socket closed (1009) for a frame or message over the maximum.
    ClosedTooBig,
    /// A socket closed (1007) for a text frame that is not UTF-8.
    ClosedBadUtf8,
    /// A socket closed (1002) for a WebSocket protocol error.
    ClosedProtocol,
    /// A client's line that did not fit in the interval's budget.
    QuietClient,
    /// Frames dropped by the clients of [`Event::QuietClient`].
    QuietFrames,
    /// A signal dropped: the recipient's queue was full (`peer_busy`).
    PeerBusy,
    /// A registration refused: the id is registered on a live socket.
    IdTaken,
    /// A silent socket replaced by a new registration of its id.
    Takeover,
    /// A socket closed (1001) after [`crate::Config::register_timeout`] without registering.
    RegisterTimeout,
    /// A registered socket closed (1001) after [`crate::Config::idle_timeout`] of silence.
    IdleClosed,
    /// A client registered.
    Registered,
    /// A registered client left (for any reason).
    Left,
}

impl Event {
    const ALL: [Event; 24] = [
        Event::ConnPerAddress,
        Event::ConnGlobal,
        Event::AcceptError,
        Event::HeaderTimeout,
        Event::HttpError,
        Event::WsOrigin,
        Event::WsPerAddress,
        Event::WsGlobal,
        Event::WsBadHandshake,
        Event::RegisterFull,
        Event::RegisterAddressFull,
        Event::ClosedViolations,
        Event::ClosedTooBig,
        Event::ClosedBadUtf8,
        Event::ClosedProtocol,
        Event::QuietClient,
        Event::QuietFrames,
        Event::PeerBusy,
        Event::IdTaken,
        Event::Takeover,
        Event::RegisterTimeout,
        Event::IdleClosed,
        Event::Registered,
        Event::Left,
    ];

    /// Words after the count in a summary line.
    fn label(self) -> &'static str {
        match self {
            Event::ConnPerAddress => "connections closed at once (address over its cap)",
            Event::ConnGlobal => "connections closed at once (server at its cap)",
            Event::AcceptError => "accept errors (out of file descriptors?)",
            Event::HeaderTimeout => "connections timed out sending headers",
            Event::HttpError => "HTTP connections failed",
            Event::WsOrigin => "WebSockets refused: other origin (403)",
            Event::WsPerAddress => "WebSockets refused: address over its unregistered cap (429)",
            Event::WsGlobal => "WebSockets refused: unregistered pool full (503)",
            Event::WsBadHandshake => "bad WebSocket handshakes (400)",
            Event::RegisterFull => "registrations refused: server full",
            Event::RegisterAddressFull => "registrations refused: address full",
            Event::ClosedViolations => "sockets closed for violations (1008)",
            Event::ClosedTooBig => "sockets closed for oversized frames (1009)",
            Event::ClosedBadUtf8 => "sockets closed for invalid UTF-8 (1007)",
            Event::ClosedProtocol => "sockets closed for protocol errors (1002)",
            Event::QuietClient => "client lines over the budget",
            Event::QuietFrames => "frames dropped in those",
            Event::PeerBusy => "signals dropped (recipient busy)",
            Event::IdTaken => "registrations refused (id taken)",
            Event::Takeover => "silent sockets replaced by a new registration",
            Event::RegisterTimeout => "sockets closed without registering",
            Event::IdleClosed => "idle sockets closed",
            Event::Registered => "peers registered",
            Event::Left => "peers left",
        }
    }

    /// Refusals and abuse go to the WARN line; the rest to the INFO line.
    fn is_warning(self) -> bool {
        !matches!(
            self,
            Event::PeerBusy
                | Event::IdTaken
                | Event::Takeover
                | Event::RegisterTimeout
                | Event::IdleClosed
                | Event::Registered
                | Event::Left
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters since the last [`Stats::flush`], and the budget of per-client lines.
#[derive(Debug)]
pub(crate) struct Stats {
    counts: [AtomicU64; Event::ALL.len()],
    lines_per_interval: u32,
    lines_left: AtomicU32,
}

/// What is open when a summary is written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gauges {
    pub(crate) peers: usize,
    pub(crate) unregistered: usize,
    pub(crate) connections: usize,
}

impl Stats {
    pub(crate) fn new(lines_per_interval: u32) -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            lines_per_interval,
            lines_left: AtomicU32::new(lines_per_interval),
        }
    }

    pub(crate) fn add(&self, event: Event) {
        self.add_n(event, 1);
    }

    pub(crate) fn add_n(&self, event: Event, n: u64) {
        self.counts[event.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Whether a client may write a line of its own now (one of the interval's budget).
    pub(crate) fn take_line(&self) -> bool {
        self.lines_left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok()
    }

    /// Writes the interval's summary lines (none when nothing happened), resets the counters
    /// and the line budget.
    pub(crate) fn flush(&self, interval: Duration, gauges: Gauges) {
        self.lines_left.store(self.lines_per_interval, Ordering::Release);
        let counts: Vec<(Event, u64)> =
            Event::ALL.iter().map(|&e| (e, self.counts[e.index()].swap(0, Ordering::Relaxed))).collect();
        let line = |warning: bool| {
            let mut out = String::new();
            for &(event, n) in &counts {
                if n > 0 && event.is_warning() == warning {
                    let sep = if out.is_empty() { "" } else { ", " };
                    let _ = write!(out, "{sep}{} {}", thousands(n), event.label());
                }
            }
            out
        };
        let span = if interval < Duration::from_secs(1) {
            format!("{} ms", interval.as_millis())
        } else {
            format!("{:.0} s", interval.as_secs_f64())
        };
        let open = format!(
            "now {} registered, {} unregistered, {} HTTP connections",
            thousands(gauges.peers as u64),
            thousands(gauges.unregistered as u64),
            thousands(gauges.connections as u64)
        );
        let warnings = line(true);
        if !warnings.is_empty() {
            tracing::warn!("last {span}: {warnings} ({open})");
        }
        let info = line(false);
        if !info.is_empty() {
            tracing::info!("last {span}: {info} ({open})");
        }
    }
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn every_event_is_listed_once_in_order() {
        for (i, e) in Event::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
    }

    #[test]
    fn the_line_budget_refills_at_each_flush() {
        let stats = Stats::new(2);
        assert!(stats.take_line() && stats.take_line());
        assert!(!stats.take_line());
        stats.flush(Duration::from_secs(1), Gauges { peers: 0, unregistered: 0, connections: 0 });
        assert!(stats.take_line());
    }
}
