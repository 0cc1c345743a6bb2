// Opening a share link (`<page>#<fileId>[.<key>]`): join, look the file up with progress,
// show what it is and that it is verified, offer the download under its own name, and
// preview images, audio, video, PDF and text.

import { bytes, date, setText, short, speed } from "./format.js";

const $ = (id) => document.getElementById(id);

/** Largest file previewed (it is received in full first; text shows as it arrives). */
const PREVIEW_MAX = 64 << 20;
/** Most text shown in a preview. */
const TEXT_MAX = 256 << 10;

const ERRORS = {
  "bad-link": "This link is not a valid share link. Check that it was copied whole.",
  "not-found": "No node has this file: it was never shared, or its owner reclaimed it.",
  "wrong-key": "The key in this link does not open the file. Check that the link was copied whole.",
  "key-needed": "This file is encrypted and the link has no key. Ask for the full link.",
  unavailable: "The nodes holding this file cannot be reached right now. Try again in a moment.",
};

/** Whether the page was opened with a share link. */
export const hasLink = () => location.hash.length > 1;

/** The link being opened: a later one (the fragment changed) supersedes it. */
let opening = 0;

/** Looks up the file of the page's link once `joined` resolves; `onRoute(route, label)`
 * draws the lookup's route. */
export async function openLink(node, joined, onRoute) {
  const mine = ++opening;
  const current = () => mine === opening;
  reset();
  await joined;
  if (!current()) return;
  setStage("Looking the file up…", 0);
  const started = performance.now();
  let result;
  try {
    result = await node.lookup(location.href, undefined, {
      onProgress: ({ bytes: done, total }) => {
        if (!current()) return;
        const elapsed = (performance.now() - started) / 1000;
        setStage(`Receiving ${bytes(done)} of ${bytes(total)}${elapsed > 0.5 ? ` · ${speed(done / elapsed)}` : ""}`,
          total ? done / total : 1);
      },
    });
  } catch (err) {
    if (current()) fail(err);
    return;
  }
  if (!current()) return result.stream.cancel();
  onRoute?.(result.route ?? [], `lookup ${short(result.fileId)}`);
  showMeta(result);
  if (previewable(result)) await preview(result, current);
  else offerSave(node, result);
}

/** The section as it starts: waiting to join, nothing shown yet. */
function reset() {
  $("open").hidden = false;
  $("open-error").hidden = true;
  $("open-error").dataset.code = "";
  $("open-file").hidden = true;
  $("open-progress").hidden = false;
  $("open-preview").hidden = true;
  $("open-preview").replaceChildren();
  $("open-download").onclick = null;
  setStage("Waiting to join the network…", 0);
}

function setStage(text, fraction) {
  setText($("open-stage"), text);
  $("open-bar").value = fraction;
}

function fail(err) {
  const el = $("open-error");
  el.textContent = ERRORS[err.code] ?? `The file could not be opened: ${err.message ?? err}`;
  el.dataset.code = err.code ?? "failed";
  el.hidden = false;
  setStage("", 0);
  $("open-progress").hidden = true;
}

function showMeta(r) {
  $("open-file").hidden = false;
  setText($("open-name"), r.name || r.fileId);
  setText($("open-size"), `${bytes(r.size)} (${r.size.toLocaleString()} bytes)`);
  setText($("open-type"), r.type || "unknown");
  setText($("open-owner"), short(r.owner));
  $("open-owner").title = r.owner;
  setText($("open-created"), date(r.created));
  setText($("open-mode"), `${r.encrypted ? "encrypted" : "public"}, ${r.k} copies, found in ${r.hops} hop${r.hops === 1 ? "" : "s"}`);
  $("open-verified").hidden = !r.verified;
  setText($("open-download"), `Download ${r.name || "file"}`);
}

const kind = (type) =>
  type.startsWith("image/") ? "image" : type.startsWith("audio/") ? "audio" : type.startsWith("video/") ? "video"
    : type === "application/pdf" ? "pdf"
    : type.startsWith("text/") || /json|xml|javascript/.test(type) ? "text" : null;

const previewable = (r) => kind(r.type ?? "") !== null && r.size <= PREVIEW_MAX;

/** Receives the whole file (showing text as it arrives), previews it, and saves that copy. */
async function preview(r, current) {
  const box = $("open-preview");
  const what = kind(r.type);
  const chunks = [];
  const reader = r.stream.getReader();
  const text = what === "text" ? document.createElement("pre") : null;
  const decoder = new TextDecoder();
  if (text) { box.replaceChildren(text); box.hidden = false; }
  try {
    for (let shown = 0; ;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!current()) return reader.cancel();
      chunks.push(value);
      if (text && shown < TEXT_MAX) {
        text.textContent += decoder.decode(value.subarray(0, TEXT_MAX - shown), { stream: true });
        shown += value.length;
      }
    }
  } catch (err) {
    if (current()) fail(err);
    return;
  }
  const blob = new Blob(chunks, { type: r.type });
  setStage(`Received ${bytes(r.size)}`, 1);
  $("open-download").onclick = () => download(blob, r.name || r.fileId);
  if (what !== "text") showMedia(box, what, URL.createObjectURL(blob), r.name);
}

function showMedia(box, what, url, name) {
  const el = what === "image" ? Object.assign(document.createElement("img"), { alt: name ?? "" })
    : what === "pdf" ? Object.assign(document.createElement("iframe"), { title: name ?? "PDF" })
    : Object.assign(document.createElement(what), { controls: true });
  el.src = url;
  box.replaceChildren(el);
  box.hidden = false;
}

/** A file not previewed: the download button streams it to disk (looking it up again
 * for a second download, as the first one used the stream). */
function offerSave(node, first) {
  setStage(`Ready: ${bytes(first.size)}`, 0);
  const button = $("open-download");
  let next = first;
  button.onclick = async () => {
    button.disabled = true;
    try {
      const r = next ?? await node.lookup(location.href);
      next = null;
      await r.save();
      setStage(`Saved ${bytes(r.size)}`, 1);
    } catch (err) {
      if (err?.name !== "AbortError") fail(err);
    } finally {
      button.disabled = false;
    }
  };
}

function download(blob, name) {
  const a = Object.assign(document.createElement("a"), { href: URL.createObjectURL(blob), download: name });
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}
