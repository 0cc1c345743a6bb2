//! One client's conduct: its rate limit (a token bucket every frame draws on, pings and
//! pongs included), its violations (counted against an allowance that refills over
//! [`crate::Config::violation_window`]; when it runs out the socket is closed with 1008), and
//! its log line: at most one per [`crate::Config::log_interval`], summarizing the frames
//! dropped since the last one (e.g. `client 127.0.0.1:5555 (peer 1a2b…): 12,345 frames
//! dropped: 12,000 rate_limited, 345 malformed`), instead of one line per frame.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use past_signaling_proto::PeerId;

use crate::stats::{Event, Stats, thousands};

/// A token bucket: `rate` tokens a second, at most `burst`.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    at: Instant,
    rate: f64,
    burst: f64,
}

impl Bucket {
    pub(crate) fn new(rate: f64, burst: f64) -> Self {
        Bucket { tokens: burst, at: Instant::now(), rate, burst }
    }

    /// Takes a token if there is one.
    pub(crate) fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What a client did wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Offence {
    /// A text, binary or pong frame beyond the rate limit.
    RateLimited,
    /// A ping beyond the rate limit.
    Ping,
    /// A message that is not a valid signaling message, or not valid now (signal before
    /// register, second register).
    Malformed,
    /// A binary frame.
    Binary,
    /// A message over [`past_signaling_proto::MAX_MESSAGE_BYTES`].
    TooLarge,
    /// A registration whose key or signature does not check out.
    Unauthenticated,
}

impl Offence {
    const ALL: [Offence; 6] = [
        Offence::RateLimited,
        Offence::Ping,
        Offence::Malformed,
        Offence::Binary,
        Offence::TooLarge,
        Offence::Unauthenticated,
    ];

    fn name(self) -> &'static str {
        match self {
            Offence::RateLimited => "rate_limited",
            Offence::Ping => "pings beyond the rate",
            Offence::Malformed => "malformed",
            Offence::Binary => "binary",
            Offence::TooLarge => "too_large",
            Offence::Unauthenticated => "unauthenticated",
        }
    }
}

/// Whether the client may go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Tolerated,
    /// Its allowance of violations ran out: close with 1008.
    Disconnect,
}

/// A client's rate limit, violations and log line.
#[derive(Debug)]
pub(crate) struct Conduct {
    remote: SocketAddr,
    conn: u64,
    rate: Bucket,
    allowance: Bucket,
    /// Frames dropped since the last line, by [`Offence`].
    dropped: [u64; Offence::ALL.len()],
    /// Error replies that did not fit in the client's own queue since the last line.
    replies_lost: u64,
    last_line: Instant,
    interval: Duration,
}

impl Conduct {
    pub(crate) fn new(remote: SocketAddr, conn: u64, config: &crate::Config) -> Self {
        let violations = f64::from(config.max_violations.max(1));
        let window = config.violation_window.as_secs_f64().max(0.001);
        Self {
            remote,
            conn,
            rate: Bucket::new(config.rate_per_second, config.rate_burst),
            allowance: Bucket::new(violations / window, violations),
            dropped: [0; Offence::ALL.len()],
            replies_lost: 0,
            // The first line comes one interval after the socket opened, or when it closes:
            // a client closed for its violations gets one line, not two.
            last_line: Instant::now(),
            interval: config.log_interval,
        }
    }

    /// Takes a token for one received frame; `false` when the client is over its rate.
    pub(crate) fn allow_frame(&mut self) -> bool {
        self.rate.take()
    }

    /// Counts `offence`; may write the client's line (see [`Conduct::log`]).
    pub(crate) fn offend(&mut self, offence: Offence, peer: Option<&PeerId>, stats: &Stats) -> Verdict {
        let index = Offence::ALL.iter().position(|&o| o == offence).unwrap_or(0);
        self.dropped[index] += 1;
        let verdict = if self.allowance.take() { Verdict::Tolerated } else { Verdict::Disconnect };
        if verdict == Verdict::Tolerated && self.last_line.elapsed() >= self.interval {
            self.log(peer, None, stats);
        }
        verdict
    }

    /// An error reply was dropped because the client's own queue is full (it does not read).
    pub(crate) fn reply_lost(&mut self) {
        self.replies_lost += 1;
    }

    /// Writes the client's line if anything was dropped since the last one (`closing`: how
    /// the socket ends, when it does), within the interval's budget of lines; else folds the
    /// counts into the interval's summary.
    pub(crate) fn log(&mut self, peer: Option<&PeerId>, closing: Option<&str>, stats: &Stats) {
        let total: u64 = self.dropped.iter().sum();
        if total == 0 && self.replies_lost == 0 {
            if let Some(closing) = closing {
                tracing::debug!(conn = self.conn, "client {}: {closing}", self.remote);
            }
            return;
        }
        if !stats.take_line() {
            stats.add(Event::QuietClient);
            stats.add_n(Event::QuietFrames, total);
        } else {
            let mut line = format!("client {}", self.remote);
            if let Some(peer) = peer {
                let _ = write!(line, " (peer {peer})");
            }
            let _ = write!(line, ": {} frames dropped", thousands(total));
            let mut sep = ": ";
            for (offence, &n) in Offence::ALL.iter().zip(&self.dropped) {
                if n > 0 {
                    let _ = write!(line, "{sep}{} {}", thousands(n), offence.name());
                    sep = ", ";
                }
            }
            if self.replies_lost > 0 {
                let _ = write!(line, "; {} error replies lost (it does not read)", thousands(self.replies_lost));
            }
            if let Some(closing) = closing {
                let _ = write!(line, "; {closing}");
            }
            tracing::warn!(conn = self.conn, "{line}");
        }
        self.dropped = [0; Offence::ALL.len()];
        self.replies_lost = 0;
        self.last_line = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_runs_out_after_max_violations() {
        let config = crate::Config { max_violations: 3, ..crate::Config::default() };
        let stats = Stats::new(100);
        let mut conduct = Conduct::new(SocketAddr::from(([127, 0, 0, 1], 1)), 1, &config);
        for _ in 0..3 {
            assert_eq!(conduct.offend(Offence::Malformed, None, &stats), Verdict::Tolerated);
        }
        assert_eq!(conduct.offend(Offence::Malformed, None, &stats), Verdict::Disconnect);
    }

    #[test]
    fn the_rate_limit_allows_the_burst() {
        let config = crate::Config { rate_per_second: 1.0, rate_burst: 3.0, ..crate::Config::default() };
        let mut conduct = Conduct::new(SocketAddr::from(([127, 0, 0, 1], 1)), 1, &config);
        assert!((0..3).all(|_| conduct.allow_frame()));
        assert!(!conduct.allow_frame());
    }
}
