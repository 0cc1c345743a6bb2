// The page: loads the wasm node, shows its status and its view as text, routes messages.
// `window.past` exposes the node and what arrived, for people in the console and for tests.
// URL options (for tests and demos): ?keepalive=MS&probe=MS&tableprobe=MS&join=MS&failedmemory=MS
// &connect=MS&leaf=L&bits=B&maxconn=N
import init, { start } from "/pkg/past_node.js";

const $ = (id) => document.getElementById(id);
const past = { node: null, delivered: [], events: [], ready: null };
window.past = past;

function log(text, cls) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  $("log").append(li);
  while ($("log").children.length > 200) $("log").firstChild.remove();
  $("log").scrollTop = $("log").scrollHeight;
}

const short = (id) => (id && id.length > 12 ? `${id.slice(0, 8)}…` : String(id));
const ms = (v) => (v == null ? "–" : `${v.toFixed(1)} ms`);

// Sets a text only when it changed (no layout work for an idle tab).
function setText(id, text) {
  if ($(id).textContent !== text) $(id).textContent = text;
}

function renderView() {
  // A hidden tab draws nothing; it renders again when shown.
  if (!past.node || document.hidden) return;
  const v = past.node.view();
  setText("status", past.node.status());
  setText("budget",
    `${v.connections.filter((c) => c.state === "open").length} open; ` +
    `${v.peerConnectionsCreated} of ${v.peerConnectionLimit} RTCPeerConnections used (budget ${v.connectionBudget})`);
  const lines = [];
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
  setText("view", lines.join("\n"));
}

function onEvent(event) {
  past.events.push(event);
  if (past.events.length > 1000) past.events.splice(0, past.events.length - 1000);
  switch (event.type) {
    case "status":
      log(`status: ${event.status} (${event.detail})`, "event");
      break;
    case "joined":
      past.joinedAt = performance.now();
      log(`joined the overlay ${Math.round(past.joinedAt)} ms after the page opened`, "event");
      break;
    case "connection":
      log(`connection ${short(event.peer)} ${event.state}${event.reason ? ` (${event.reason})` : ""}`, "event");
      break;
    case "delivered":
      past.delivered.push({ ...event, at: performance.timeOrigin + performance.now() });
      // The origin is the sender's claim unless it handed the message over itself.
      const sender = event.originVerified
        ? `from ${short(event.origin)}`
        : `claiming to come from ${short(event.origin)} (unverified, via ${event.via ? short(event.via) : "this node"})`;
      log(`delivered for ${short(event.key)} ${sender} in ${event.hops} hops: ` +
        (typeof event.data === "string" ? JSON.stringify(event.data) : `<${event.data.byteLength} bytes>`));
      break;
    case "refused":
      log(`refused ${short(event.peer)}: ${event.reason}`, "error");
      break;
    case "error":
      log(`error: ${event.message}`, "error");
      break;
  }
  renderView();
}

function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

$("route-form").addEventListener("submit", (e) => {
  e.preventDefault();
  if (!past.node) return;
  const key = $("route-key").value.trim() || randomKey();
  try {
    past.node.route(key, $("route-text").value);
    log(`routed to ${short(key)}: ${JSON.stringify($("route-text").value)}`, "event");
    $("route-text").value = "";
  } catch (err) {
    log(`error: ${err.message ?? err}`, "error");
  }
});

function options() {
  const q = new URLSearchParams(location.search);
  const num = (k) => (q.has(k) ? Number(q.get(k)) : undefined);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return {
    signalingUrl: `${scheme}://${location.host}/ws`,
    keepaliveMs: num("keepalive"),
    probeTimeoutMs: num("probe"),
    tableProbeMs: num("tableprobe"),
    joinTimeoutMs: num("join"),
    failedMemoryMs: num("failedmemory"),
    leafSetSize: num("leaf"),
    digitBits: num("bits"),
    maxConnections: num("maxconn"),
    connectTimeoutMs: num("connect"),
    capacityBytes: num("capacity"),
    maxFileBytes: num("maxfile"),
    quotaBytes: num("quota"),
    lookupSources: num("sources"),
    // "relay" gathers only TURN candidates: with no TURN server configured no connection
    // can open (how a network that needs one behaves; used by a test).
    iceTransportPolicy: q.get("icepolicy") ?? undefined,
    onEvent,
  };
}

async function main() {
  await init();
  const node = await start(options());
  past.node = node;
  $("node-id").textContent = node.id();
  // Tell the others at once when the tab goes away.
  addEventListener("pagehide", () => node.leave());
  renderView();
  setInterval(renderView, 1000);
  document.addEventListener("visibilitychange", renderView);
  return node;
}

past.ready = main().catch((err) => {
  $("status").textContent = `failed: ${err.message ?? err}`;
  $("status").classList.add("error");
  throw err;
});
