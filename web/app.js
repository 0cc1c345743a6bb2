// The page: starts this tab's node and wires the parts of the page to it. `window.past`
// exposes the node and what arrived, for people in the console and for tests.
// URL options (for tests and demos): ?keepalive=MS&probe=MS&tableprobe=MS&join=MS&failedmemory=MS
// &connect=MS&leaf=L&bits=B&maxconn=N&capacity=BYTES&maxfile=BYTES&quota=BYTES&sources=N&icepolicy=relay
// &budget=N&pace=HOURS&answers=auto|route|straight&relaymax=BYTES

import init, { start } from "/pkg/past_node.js";
import { logEvent, renderBudget, renderDetails, setupRouteForm } from "./details.js";
import { renderMyFiles, renderStored } from "./myfiles.js";
import { RingView, RoutingTableView } from "./network.js";
import { hasLink, openLink } from "./open.js";
import { setupAutoReload } from "./reload.js";
import { setupShare, sharing } from "./share.js";
import { describe, show } from "./status.js";

const $ = (id) => document.getElementById(id);
const past = { node: null, delivered: [], events: [], ready: null, joinedAt: null };
window.past = past;

let joined;
const whenJoined = new Promise((ok) => { joined = ok; });
let reloadIfAdvised = () => {};
const ring = new RingView($("ring"));
const table = new RoutingTableView($("table"));

function render() {
  // A hidden tab draws nothing; it renders again when shown.
  if (!past.node || document.hidden) return;
  const view = past.node.view();
  const stored = past.node.stored();
  show(describe(view, stored));
  renderStored(stored);
  ring.update(view);
  table.update(view);
  renderBudget(view);
  if ($("details").open) renderDetails(view);
  if (view.joined) joined();
}

function onEvent(event) {
  past.events.push(event);
  if (past.events.length > 1000) past.events.splice(0, past.events.length - 1000);
  if (event.type === "joined") past.joinedAt = performance.now();
  if (event.type === "delivered") past.delivered.push({ ...event, at: performance.timeOrigin + performance.now() });
  logEvent(event);
  render();
  reloadIfAdvised();
}

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
    connectionBudget: num("budget"),
    paceHours: num("pace"),
    answers: q.get("answers") ?? undefined,
    relayMaxBytes: num("relaymax"),
    // "relay" gathers only TURN candidates: with no TURN server configured no connection
    // can open (how a network that needs one behaves; used by a test).
    iceTransportPolicy: q.get("icepolicy") ?? undefined,
    onEvent,
  };
}

/** Opens the page's share link, drawing the lookup's route on the ring. */
function openShared() {
  if (hasLink()) openLink(past.node, whenJoined, (route, label) => ring.traceRoute(route, { label }));
}

async function main() {
  const wasm = await init();
  // Memory of this tab's node, for people in the console and for benchmarks.
  past.memory = () => ({ wasmBytes: wasm.memory.buffer.byteLength, jsHeapBytes: performance.memory?.usedJSHeapSize ?? null });
  const node = await start(options());
  past.node = node;
  $("node-id").textContent = node.id();
  // Tell the others at once when the tab goes away.
  addEventListener("pagehide", () => node.leave());
  setupShare(node, () => renderMyFiles(node));
  reloadIfAdvised = setupAutoReload(() => {
    const view = node.view();
    return view.reloadAdvised || view.outdated;
  }, () => sharing() || hasLink());
  setupRouteForm(node);
  renderMyFiles(node);
  openShared();
  addEventListener("hashchange", openShared);
  $("details").addEventListener("toggle", render);
  render();
  setInterval(() => { render(); reloadIfAdvised(); }, 1000);
  document.addEventListener("visibilitychange", render);
  return node;
}

past.ready = main().catch((err) => {
  show({ state: "error", text: `This tab could not start a node: ${err.message ?? err}`,
    help: "Reload the page. A browser without WebRTC, IndexedDB or WebCrypto Ed25519 cannot run a node." });
  throw err;
});
