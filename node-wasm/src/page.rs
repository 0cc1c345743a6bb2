//! What the page sees: the status line, the events handed to its `onEvent`, and the node
//! view (identity, tables, connections, connection budget).

use js_sys::{Array, Object, Reflect, Uint8Array};
use past_core::{Id, Rtt, Side};
use past_link::manager::{Role, State, Via};
use past_link::version::{self, OVERLAY_VERSION, version_text};
use past_link::{Delivery, Stack};
use wasm_bindgen::JsValue;

use crate::driver::{Driver, PEER_CONNECTION_LIMIT, Signaling, hex, now};

/// The node's lifecycle as shown to the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Status {
    #[default]
    Connecting,
    Joining,
    Joined,
    /// Every recent connection attempt failed and none is open.
    Unreachable,
    Left,
    Closed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Joining => "joining",
            Status::Joined => "joined",
            Status::Unreachable => "unreachable",
            Status::Left => "left",
            Status::Closed => "closed",
        }
    }
}

/// The page's side of the driver.
#[derive(Debug, Default)]
pub(crate) struct Page {
    pub(crate) status: Status,
    pub(crate) detail: String,
    events: Vec<Object>,
    open: usize,
    /// The overlay version of the page the signaling server serves, when it is not this
    /// page's ([`past_link::version::outdated_by`]).
    pub(crate) outdated_by: Option<u32>,
}

impl Page {
    pub(crate) fn take_events(&mut self) -> Vec<Object> {
        std::mem::take(&mut self.events)
    }

    /// `left` or `closed`: no later change of the stack's phase overrides it.
    pub(crate) fn set_final(&mut self, status: Status) {
        self.status = status;
    }

    /// Recomputes the status and the number of open connections; emits what changed.
    pub(crate) fn refresh(&mut self, stack: &Stack, signaling: &Signaling, budget: u32) {
        let manager = stack.manager();
        let stats = manager.stats();
        let unreachable = manager.unreachable() && stats.open == 0;
        let status = match self.status {
            Status::Left | Status::Closed => self.status,
            _ if unreachable => Status::Unreachable,
            _ if stack.node().is_joined() => Status::Joined,
            _ if stack.node().phase() != past_core::Phase::Idle || *signaling == Signaling::Registered => {
                Status::Joining
            }
            _ => Status::Connecting,
        };
        let mut detail = match signaling {
            Signaling::Connecting => "connecting to the signaling server".to_string(),
            Signaling::Registering => "registering with the signaling server".to_string(),
            Signaling::Registered => "registered with the signaling server".to_string(),
            Signaling::Offline { retry_at } => {
                format!("signaling server unreachable, retrying in {} s", retry_at.since(now()).as_secs() + 1)
            }
        };
        if unreachable {
            detail.push_str(&format!(
                "; peers cannot be reached: the last {} connection attempts failed (a network between \
                 peers may need an ICE server: STUN or TURN)",
                stats.failure_streak
            ));
        }
        if stats.created >= budget {
            detail.push_str("; connection budget used up, routing through open connections");
        } else if manager.reload_advised() {
            detail.push_str(
                "; connection budget nearly used up: reload the page to renew it (its identity and \
                 replicas are kept)",
            );
        }
        if let Some(served) = self.outdated_by {
            detail.push_str(&format!(
                "; a new version of this page is out (overlay {}, this tab runs {}): reload the page to \
                 update (its identity and replicas are kept)",
                version_text(served),
                ours()
            ));
        }
        if status != self.status || detail != self.detail {
            self.status = status;
            self.detail = detail.clone();
            self.emit("status", &[("status", status.as_str().into()), ("detail", detail.into())]);
        }
        if stats.open != self.open {
            self.open = stats.open;
            self.emit("peers", &[("count", (stats.open as u32).into())]);
        }
    }

    /// The status as one line.
    pub(crate) fn status_line(&self) -> String {
        format!("{} ({})", self.status.as_str(), self.detail)
    }

    /// The signaling server serves a page of overlay version `served`: tells the page once
    /// if it is not this one's.
    pub(crate) fn server_version(&mut self, served: u32) {
        if !version::outdated_by(served) || self.outdated_by == Some(served) {
            return;
        }
        self.outdated_by = Some(served);
        tracing::warn!("the server serves overlay version {}, this page runs {}", version_text(served), ours());
        let fields = [("served", version_text(served).into()), ("running", ours().into())];
        self.emit("outdated", &fields);
    }

    pub(crate) fn error(&mut self, message: &str) {
        tracing::warn!("{message}");
        self.emit("error", &[("message", message.into())]);
    }

    pub(crate) fn connection(&mut self, peer: Id, state: &str, reason: Option<&str>) {
        let mut fields = vec![("peer", hex(peer).into()), ("state", state.into())];
        if let Some(reason) = reason {
            fields.push(("reason", reason.into()));
        }
        self.emit("connection", &fields);
    }

    /// A payload routed to us. `origin` is what the sender wrote; `originVerified` says
    /// whether the origin handed it over itself on an authenticated connection.
    pub(crate) fn delivered(&mut self, delivery: &Delivery, own: Id) {
        let payload = &delivery.payload;
        let data: JsValue = if payload.text {
            String::from_utf8_lossy(&payload.data).into_owned().into()
        } else {
            Uint8Array::from(payload.data.as_slice()).into()
        };
        let via = delivery.last_hop.map_or(JsValue::NULL, |p| hex(p).into());
        self.emit(
            "delivered",
            &[
                ("key", hex(delivery.key).into()),
                ("origin", hex(payload.origin).into()),
                ("originVerified", delivery.origin_verified(own).into()),
                ("via", via),
                ("hops", delivery.hops.into()),
                ("data", data),
            ],
        );
    }

    pub(crate) fn emit(&mut self, kind: &str, fields: &[(&str, JsValue)]) {
        let event = Object::new();
        set(&event, "type", kind.into());
        for (key, value) in fields {
            set(&event, key, value.clone());
        }
        self.events.push(event);
    }
}

fn set(object: &Object, key: &str, value: JsValue) {
    let _ = Reflect::set(object, &key.into(), &value);
}

fn rtt_ms(rtt: Rtt) -> JsValue {
    rtt.micros().map_or(JsValue::NULL, |us| (f64::from(us) / 1000.0).into())
}

fn ids(ids: &[Id]) -> Array {
    ids.iter().map(|id| JsValue::from(hex(*id))).collect()
}

/// The node view: identity, status, tables, connections, connection budget.
pub(crate) fn view(driver: &Driver) -> Object {
    let node = driver.stack.node();
    let manager = driver.stack.manager();
    let state = node.state();
    let leaf_set = Object::new();
    set(&leaf_set, "counterClockwise", ids(state.leaf_set.side(Side::CounterClockwise)).into());
    set(&leaf_set, "clockwise", ids(state.leaf_set.side(Side::Clockwise)).into());
    let table: Array = state
        .table
        .entries()
        .map(|(row, column, entry)| {
            let e = Object::new();
            set(&e, "row", (row as u32).into());
            set(&e, "column", (column as u32).into());
            set(&e, "id", hex(entry.id).into());
            set(&e, "rttMs", rtt_ms(entry.rtt));
            JsValue::from(e)
        })
        .collect();
    let neighborhood: Array = state
        .neighborhood
        .entries()
        .iter()
        .map(|entry| {
            let e = Object::new();
            set(&e, "id", hex(entry.id).into());
            set(&e, "rttMs", rtt_ms(entry.rtt));
            JsValue::from(e)
        })
        .collect();
    let connections: Array = manager
        .connections()
        .map(|c| {
            let e = Object::new();
            set(&e, "id", hex(c.peer).into());
            let state_name = match c.state {
                State::Signaling => "signaling",
                State::Authenticating => "authenticating",
                State::Open => "open",
                State::Closing => "closing",
            };
            set(&e, "state", state_name.into());
            set(&e, "direction", if c.role == Role::Offerer { "out" } else { "in" }.into());
            set(&e, "via", if c.via == Via::Server { "server" } else { "overlay" }.into());
            let rtt = state
                .table
                .rtt_of(c.peer)
                .filter(|r| r.is_known())
                .or_else(|| state.neighborhood.entries().iter().find(|e| e.id == c.peer).map(|e| e.rtt))
                .unwrap_or(Rtt::UNKNOWN);
            set(&e, "rttMs", rtt_ms(rtt));
            set(&e, "leaf", state.leaf_set.contains(c.peer).into());
            set(&e, "table", state.table.contains(c.peer).into());
            set(&e, "pending", (c.pending as u32).into());
            let backlog = driver.conns.get(&c.conn).map_or(0, |p| p.backlog());
            set(&e, "backlog", (backlog as u32).into());
            JsValue::from(e)
        })
        .collect();
    let view = Object::new();
    set(&view, "nodeId", hex(driver.id()).into());
    set(&view, "slot", driver.identity.slot.into());
    set(&view, "status", driver.page.status.as_str().into());
    set(&view, "detail", driver.page.detail.clone().into());
    set(&view, "joined", node.is_joined().into());
    let (signaling, retry_ms) = match driver.signaling {
        Signaling::Connecting => ("connecting", JsValue::NULL),
        Signaling::Registering => ("registering", JsValue::NULL),
        Signaling::Registered => ("registered", JsValue::NULL),
        Signaling::Offline { retry_at } => ("offline", (retry_at.since(now()).as_millis() as f64).into()),
    };
    set(&view, "signaling", signaling.into());
    set(&view, "signalingRetryMs", retry_ms);
    let stats = manager.stats();
    set(&view, "openConnections", (stats.open as u32).into());
    set(&view, "digitBits", u32::from(node.config().base.bits()).into());
    set(&view, "leafSetSize", (node.config().leaf_set_size as u32).into());
    set(&view, "leafSet", leaf_set.into());
    set(&view, "routingTable", table.into());
    set(&view, "neighborhood", neighborhood.into());
    set(&view, "connections", connections.into());
    set(&view, "peerConnectionsCreated", stats.created.into());
    set(&view, "connectionAttemptsFailed", stats.failed.into());
    set(&view, "connectionAttemptsRefused", stats.refused.into());
    set(&view, "peerConnectionLimit", PEER_CONNECTION_LIMIT.into());
    let t = now();
    let trouble: Array = manager
        .recent_trouble()
        .map(|trouble| {
            let e = Object::new();
            set(&e, "peer", hex(trouble.peer).into());
            set(&e, "what", trouble.what.as_str().into());
            set(&e, "agoMs", (t.since(trouble.at).as_millis() as f64).into());
            JsValue::from(e)
        })
        .collect();
    set(&view, "recentTrouble", trouble.into());
    let rtts = driver.stack.rtt_sources();
    set(&view, "rttsFromTransport", (rtts.transport as f64).into());
    set(&view, "rttsByProbe", (rtts.probes as f64).into());
    set(&view, "connectionBudget", driver.settings.manager.connection_budget.into());
    set(&view, "maxConnections", (driver.settings.manager.max_connections as u32).into());
    set(&view, "reloadAdvised", driver.stack.manager().reload_advised().into());
    set(&view, "outdated", driver.page.outdated_by.is_some().into());
    set(&view, "overlayVersion", ours().into());
    view
}

/// This page's overlay version, for people.
fn ours() -> String {
    version_text(OVERLAY_VERSION)
}
