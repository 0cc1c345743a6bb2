//! The open-file limit: raising it at start ([`raise_fd_limit`], called by the binary), and
//! keeping the connection caps within it, so the server never runs out of file descriptors
//! because of its own caps (an `accept` failing with `EMFILE` makes `/ws` and `/health` stop
//! answering).

use std::io;

use crate::config::Config;

/// File descriptors kept for everything that is not a client connection: the listener,
/// the runtime (epoll, eventfds), stdio, and a margin.
pub(crate) const FD_RESERVE: u64 = 64;

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard limit, where the platform
/// allows; returns the soft limit in force afterwards. Call it once at start, before
/// [`crate::run`] (which sizes its caps from the limit).
pub fn raise_fd_limit() -> io::Result<u64> {
    imp::raise()
}

/// The soft open-file limit in force, if the platform has one.
pub(crate) fn fd_limit() -> Option<u64> {
    imp::current()
}

#[cfg(unix)]
mod imp {
    use std::io;

    use nix::sys::resource::{Resource, getrlimit, setrlimit};

    pub(super) fn raise() -> io::Result<u64> {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
        if soft >= hard {
            return Ok(soft);
        }
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => Ok(hard),
            Err(err) => {
                // macOS refuses more than OPEN_MAX for the soft limit even under an
                // unlimited hard limit: try that before giving up.
                let open_max: u64 = 10_240;
                if hard > open_max && setrlimit(Resource::RLIMIT_NOFILE, open_max, hard).is_ok() {
                    return Ok(open_max);
                }
                Err(io::Error::from(err))
            }
        }
    }

    pub(super) fn current() -> Option<u64> {
        getrlimit(Resource::RLIMIT_NOFILE).ok().map(|(soft, _)| soft)
    }
}

#[cfg(not(unix))]
mod imp {
    use std::io;

    pub(super) fn raise() -> io::Result<u64> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "no open-file limit on this platform"))
    }

    pub(super) fn current() -> Option<u64> {
        None
    }
}

/// File descriptors the caps of `config` may hold at once: each HTTP connection counts
/// twice (its socket and a file of the page it may be sending), each WebSocket once.
fn needed(config: &Config) -> u64 {
    let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    n(config.max_connections)
        .saturating_mul(2)
        .saturating_add(n(config.max_unregistered))
        .saturating_add(n(config.max_peers))
        .saturating_add(FD_RESERVE)
}

/// `config` with its global caps lowered to fit in an open-file limit of `limit`: HTTP
/// connections get at most an eighth of the room (two descriptors each), unregistered
/// sockets a sixteenth, registered peers the rest (none below 1); every per-address cap is
/// at most its global cap. Returns the config and whether the caps were lowered.
pub(crate) fn fit(mut config: Config, limit: Option<u64>) -> (Config, bool) {
    let mut lowered = false;
    if let Some(limit) = limit
        && needed(&config) > limit
    {
        let room = usize::try_from(limit.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX).max(4);
        config.max_connections = config.max_connections.min(room / 16).max(1);
        config.max_unregistered = config.max_unregistered.min(room / 16).max(1);
        let rest = room.saturating_sub(2 * config.max_connections + config.max_unregistered);
        config.max_peers = config.max_peers.min(rest).max(1);
        lowered = true;
    }
    config.max_connections_per_address = config.max_connections_per_address.min(config.max_connections);
    config.max_unregistered_per_address = config.max_unregistered_per_address.min(config.max_unregistered);
    config.max_peers_per_address = config.max_peers_per_address.min(config.max_peers);
    (config, lowered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_caps_fit_in_1024_descriptors_once_scaled() {
        let (config, lowered) = fit(Config::default(), Some(1024));
        assert!(lowered);
        assert!(needed(&config) <= 1024, "{}", needed(&config));
        assert!(config.max_peers > 700, "most of the room goes to peers: {config:?}");
        assert!(config.max_connections >= 50 && config.max_unregistered >= 50, "{config:?}");
        assert!(config.max_peers_per_address <= config.max_peers);
    }

    #[test]
    fn caps_that_fit_are_kept() {
        let (config, lowered) = fit(Config::default(), Some(65_536));
        assert!(!lowered);
        assert_eq!(config.max_peers, Config::default().max_peers);
        let (config, lowered) = fit(Config::default(), None);
        assert!(!lowered);
        assert_eq!(config.max_connections, Config::default().max_connections);
    }

    #[test]
    fn raising_is_harmless() {
        if let Ok(soft) = raise_fd_limit() {
            assert_eq!(fd_limit(), Some(soft));
        }
    }
}
