// The status line at the top of the page: the node's state in plain words, storage used
// and offered, and when something is wrong, what it means and a way out.

import { bytes, setText } from "./format.js";

const $ = (id) => document.getElementById(id);

/** What the status says, from the node's view and its storage: {state, text, help}. */
export function describe(view, stored, problem) {
  const storage = stored
    ? ` · storing ${bytes(stored.bytesUsed + stored.bytesCached)} of ${bytes(stored.capacity)} offered`
    : "";
  if (problem) return { state: "error", text: problem.text, help: problem.help };
  if (view.status === "closed" || view.status === "left") {
    return { state: "error", text: "This tab has left the network.", help: "Reload the page to join again." };
  }
  if (view.outdated) {
    return {
      state: "warn",
      text: "A new version of this page is out.",
      help: "Reload the page to update: this tab keeps its identity and the files it stores. Until then, " +
        "nodes of the new version cannot talk to it.",
    };
  }
  if (view.status === "unreachable") {
    return {
      state: "error",
      text: "Other nodes cannot be reached from this network.",
      help: "Direct connections between browsers failed. A network behind a strict firewall needs an ICE " +
        "server (STUN or TURN): ask whoever runs this page to configure one (the server's --ice-server option).",
    };
  }
  if (view.signaling === "offline" && !view.joined) {
    const retry = Math.max(1, Math.ceil((view.signalingRetryMs ?? 0) / 1000));
    return {
      state: "error",
      text: `The server cannot be reached. Trying again in ${retry} s…`,
      help: "Check your connection. The page keeps trying on its own; once it joins, it no longer needs the server.",
    };
  }
  if (!view.joined) {
    const text = view.signaling === "registered" ? "Joining the network…" : "Connecting…";
    return { state: "busy", text, help: null };
  }
  const peers = view.openConnections;
  if (peers === 0) {
    return {
      state: "warn",
      text: `Joined. No other nodes yet${storage}.`,
      help: "You are the only node: files you share stay in this tab until others open the page. Keep it open.",
    };
  }
  if (stored && stored.free <= 0) {
    return {
      state: "warn",
      text: `Connected to ${peers} peer${peers === 1 ? "" : "s"} · storage offered is full`,
      help: "This tab stores no more files for others. Free space in the browser, or reclaim your own files.",
    };
  }
  return { state: "ok", text: `Connected to ${peers} peer${peers === 1 ? "" : "s"}${storage}`, help: null };
}

/** Shows `status` ({state, text, help}) in the header. */
export function show(status) {
  $("status").dataset.state = status.state;
  setText($("status-text"), status.text);
  const help = $("status-help");
  help.hidden = !status.help;
  if (status.help) setText(help, status.help);
}
