// The page: loads the wasm node, shows its state, sends and shows messages.
// `window.past` exposes the node and what arrived, for people in the console and for tests.
import init, { start } from "/pkg/past_node.js";

const $ = (id) => document.getElementById(id);
const statusEl = $("status");
const peersEl = $("peers");
const sendTo = $("send-to");
const logEl = $("log");

const past = { node: null, received: [], events: [], ready: null };
window.past = past;

function log(text, cls) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  logEl.append(li);
  logEl.scrollTop = logEl.scrollHeight;
}

function short(id) {
  return id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

function describe(data) {
  return typeof data === "string" ? JSON.stringify(data) : `<${data.byteLength} bytes>`;
}

function renderPeers() {
  const peers = past.node ? past.node.peers() : [];
  peersEl.replaceChildren(
    ...(peers.length
      ? peers.map((p) => Object.assign(document.createElement("li"), { textContent: p }))
      : [Object.assign(document.createElement("li"), {
          className: "empty",
          textContent: "none yet: open this page in another tab",
        })]),
  );
  const selected = sendTo.value;
  sendTo.replaceChildren(
    ...peers.map((p) => Object.assign(document.createElement("option"), { value: p, textContent: short(p) })),
  );
  if (peers.includes(selected)) sendTo.value = selected;
}

function onEvent(event) {
  past.events.push(event);
  switch (event.type) {
    case "status":
      statusEl.textContent = event.status;
      break;
    case "connected":
      log(`connected to ${event.peer}`, "event");
      renderPeers();
      break;
    case "disconnected":
      log(`disconnected from ${event.peer} (${event.reason})`, "event");
      renderPeers();
      break;
    case "peer_joined":
      log(`peer ${short(event.peer)} joined the signaling server`, "event");
      break;
    case "peer_left":
      log(`peer ${short(event.peer)} left the signaling server`, "event");
      break;
    case "message":
      past.received.push({ peer: event.peer, data: event.data });
      log(`${short(event.peer)} → ${describe(event.data)}`);
      break;
    case "error":
      log(`error: ${event.message}`, "error");
      break;
  }
}

$("send-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("send-text");
  const to = sendTo.value;
  if (!past.node || !to) return;
  try {
    await past.node.send(to, input.value);
    log(`me → ${short(to)}: ${describe(input.value)}`, "event");
    input.value = "";
  } catch (err) {
    log(`error: ${err.message ?? err}`, "error");
  }
});

async function main() {
  await init();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const node = await start({ signalingUrl: `${scheme}://${location.host}/ws`, onEvent });
  past.node = node;
  $("node-id").textContent = node.id();
  statusEl.textContent = node.status();
  renderPeers();
  return node;
}

past.ready = main().catch((err) => {
  statusEl.textContent = `failed: ${err.message ?? err}`;
  statusEl.classList.add("error");
  throw err;
});
