//! The version of what two nodes say over a data channel: the link's frames and
//! application messages ([`LINK_REVISION`]) and the core's wire format
//! ([`past_core::wire::WIRE_VERSION`]), in one number ([`OVERLAY_VERSION`]).
//!
//! Each side puts it first in its handshake hello ([`crate::auth::AuthMessage::Hello`]);
//! two nodes of different versions cannot understand each other, so each refuses the other
//! with a reason that names both versions ([`crate::auth::AuthError::OtherVersion`]) rather
//! than failing later on a frame it cannot read. The signaling server, which serves the
//! page, announces the version of the code it serves, so a tab left open across an update
//! learns that it should reload. It is not a negotiation: a network runs one version.

use past_core::wire::WIRE_VERSION;

/// The revision of the link's own formats: frame types ([`crate::frame`]) and
/// [`crate::AppMessage`]. Raise it with any change to them. 2: ping and pong frames.
pub const LINK_REVISION: u16 = 2;

/// The version two nodes must share: the core's wire version in the high 16 bits, the
/// link's revision in the low ones.
pub const OVERLAY_VERSION: u32 = (WIRE_VERSION as u32) << 16 | LINK_REVISION as u32;

/// `version` for people: `wire.link`, as "7.2"; version 0 stands for the code from before
/// versions were exchanged.
pub fn version_text(version: u32) -> String {
    match version {
        0 => "from before version numbers".to_string(),
        v => format!("{}.{}", v >> 16, v & 0xffff),
    }
}

/// Whether a signaling server serving a page of overlay version `served` (0: a server
/// that does not say) serves other code than this node's: the nodes of that page refuse
/// this one, so it should be updated (a page: reloaded).
pub fn outdated_by(served: u32) -> bool {
    served != 0 && served != OVERLAY_VERSION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_names_both_formats() {
        assert_eq!(version_text(OVERLAY_VERSION), format!("{WIRE_VERSION}.{LINK_REVISION}"));
        assert_eq!(version_text(7 << 16 | 1), "7.1");
        assert_eq!(version_text(0), "from before version numbers");
    }

    #[test]
    fn a_server_of_other_code_outdates_the_node_and_one_that_does_not_say_does_not() {
        assert!(outdated_by(OVERLAY_VERSION + 1));
        assert!(outdated_by(OVERLAY_VERSION - 1), "a server rolled back: the page it serves is the one to run");
        assert!(!outdated_by(OVERLAY_VERSION));
        assert!(!outdated_by(0));
    }
}
