// The "details" panel: the node's state as text, a form to route a message, and the
// events log (for people curious about the overlay, and for tests).

import { setText, short } from "./format.js";

const $ = (id) => document.getElementById(id);
const ms = (v) => (v == null ? "–" : `${v.toFixed(1)} ms`);

/** Appends a line to the events log (keeping the last 200). */
export function log(text, cls) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  $("log").append(li);
  while ($("log").children.length > 200) $("log").firstChild.remove();
}

/** The connection figures under the network heading. */
export function renderBudget(v) {
  setText($("budget"),
    `${v.connections.filter((c) => c.state === "open").length} connections open · ` +
    `${v.peerConnectionsCreated} of ${v.peerConnectionLimit} RTCPeerConnections used`);
}

/** The node view as text. */
export function renderDetails(v) {
  const lines = [`status: ${v.status} (${v.detail})`];
  lines.push(`leaf set (${v.leafSet.counterClockwise.length} + ${v.leafSet.clockwise.length})`);
  lines.push(`  ← ${v.leafSet.counterClockwise.map(short).join(" ") || "–"}`);
  lines.push(`  → ${v.leafSet.clockwise.map(short).join(" ") || "–"}`);
  lines.push(`routing table (${v.routingTable.length} entries)`);
  for (const e of v.routingTable) lines.push(`  [${e.row}][${e.column.toString(16)}] ${short(e.id)} ${ms(e.rttMs)}`);
  lines.push(`neighborhood set (${v.neighborhood.length})`);
  for (const e of v.neighborhood) lines.push(`  ${short(e.id)} ${ms(e.rttMs)}`);
  lines.push(`connections (${v.connections.length})`);
  for (const c of v.connections) {
    const roles = [c.leaf ? "leaf" : "", c.table ? "table" : ""].filter(Boolean).join(",") || "other";
    lines.push(`  ${short(c.id)} ${c.state} ${c.direction} via ${c.via} ${ms(c.rttMs)} ${roles}`);
  }
  setText($("view"), lines.join("\n"));
}

/** Logs a node event. */
export function logEvent(event) {
  switch (event.type) {
    case "status":
      log(`status: ${event.status} (${event.detail})`, "event");
      break;
    case "joined":
      log(`joined the overlay ${Math.round(performance.now())} ms after the page opened`, "event");
      break;
    case "connection":
      log(`connection ${short(event.peer)} ${event.state}${event.reason ? ` (${event.reason})` : ""}`, "event");
      break;
    case "delivered": {
      // The origin is the sender's claim unless it handed the message over itself.
      const sender = event.originVerified
        ? `from ${short(event.origin)}`
        : `claiming to come from ${short(event.origin)} (unverified, via ${event.via ? short(event.via) : "this node"})`;
      log(`delivered for ${short(event.key)} ${sender} in ${event.hops} hops: ` +
        (typeof event.data === "string" ? JSON.stringify(event.data) : `<${event.data.byteLength} bytes>`));
      break;
    }
    case "refused":
      log(`refused ${short(event.peer)}: ${event.reason}`, "error");
      break;
    case "error":
      log(`error: ${event.message}`, "error");
      break;
  }
}

function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The form that routes a message to a key. */
export function setupRouteForm(node) {
  $("route-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("route-key").value.trim() || randomKey();
    try {
      node.route(key, $("route-text").value);
      log(`routed to ${short(key)}: ${JSON.stringify($("route-text").value)}`, "event");
      $("route-text").value = "";
    } catch (err) {
      log(`error: ${err.message ?? err}`, "error");
    }
  });
}
