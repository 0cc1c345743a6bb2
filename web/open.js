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

/** Errors a second try may not repeat. */
const RETRYABLE = new Set(["not-found", "unavailable", "failed"]);

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
  $("open-retry").onclick = () => openLink(node, joined, onRoute);
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
  $("open-retry").hidden = true;
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
  // What may change in a moment (holders coming back, a file being stored) is worth a retry.
  $("open-retry").hidden = !RETRYABLE.has(err.code ?? "failed");
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

/** Receives the whole file, previews it (text and, where the browser can, audio and
 * video while it arrives; the rest once received), and saves that copy. */
async function preview(r, current) {
  const box = $("open-preview");
  const what = kind(r.type);
  const chunks = [];
  const reader = r.stream.getReader();
  const live = liveSink(box, what, r.type);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!current()) return reader.cancel();
      chunks.push(value);
      live?.push(value);
    }
  } catch (err) {
    if (current()) fail(err);
    return;
  }
  const blob = new Blob(chunks, { type: r.type });
  setStage(`Received ${bytes(r.size)}`, 1);
  $("open-download").onclick = () => download(blob, r.name || r.fileId);
  const shown = live ? await live.finish() : false;
  if (!shown) showMedia(box, what, URL.createObjectURL(blob), r.name);
}

/** Where chunks go as they arrive: text is shown at once; audio and video are fed to a
 * MediaSource when the browser plays the type that way (decided on the first chunk);
 * other types wait for the end. */
function liveSink(box, what, type) {
  if (what === "text") return textSink(box);
  if ((what !== "audio" && what !== "video") || !window.MediaSource) return null;
  let sink = null, decided = false;
  return {
    push(value) {
      if (!decided) {
        decided = true;
        const playable = sourceType(type, value);
        if (playable) sink = mediaSink(box, what, playable);
      }
      sink?.push(value);
    },
    finish: async () => (sink ? sink.finish() : false),
  };
}

/** WebM codec ids (in the file's first bytes) and their names in a MIME type. */
const WEBM_CODECS = [["V_VP8", "vp8"], ["V_VP9", "vp9"], ["A_OPUS", "opus"], ["A_VORBIS", "vorbis"]];

/** The type to open a SourceBuffer with: the file's own when the browser takes it, or
 * for WebM with the codecs named in its header; null when it cannot be played as it comes
 * (e.g. an MP4 whose index is at the end). */
function sourceType(type, first) {
  if (MediaSource.isTypeSupported(type)) return type;
  const base = type.split(";")[0].trim();
  if (base !== "video/webm" && base !== "audio/webm") return null;
  const header = new TextDecoder("latin1").decode(first.subarray(0, 4096));
  const codecs = WEBM_CODECS.filter(([id]) => header.includes(id)).map(([, name]) => name);
  const full = `${base}; codecs="${codecs.join(",")}"`;
  return codecs.length && MediaSource.isTypeSupported(full) ? full : null;
}

function textSink(box) {
  const pre = document.createElement("pre");
  box.replaceChildren(pre);
  box.hidden = false;
  const decoder = new TextDecoder();
  let shown = 0;
  return {
    push(value) {
      if (shown >= TEXT_MAX) return;
      pre.textContent += decoder.decode(value.subarray(0, TEXT_MAX - shown), { stream: true });
      shown += value.length;
    },
    finish: async () => true,
  };
}

/** Audio or video played while it arrives (Media Source Extensions); `finish()` says
 * whether it worked (a file the browser cannot parse that way is shown once received). */
function mediaSink(box, what, type) {
  const source = new MediaSource();
  const el = Object.assign(document.createElement(what), { controls: true, src: URL.createObjectURL(source) });
  el.dataset.streamed = "true";
  el.dataset.appends = "0";
  box.replaceChildren(el);
  box.hidden = false;
  let failed = false;
  let queue = new Promise((ok) => source.addEventListener("sourceopen", ok, { once: true }))
    .then(() => source.addSourceBuffer(type))
    .catch(() => { failed = true; });
  const append = (buffer, value) => new Promise((ok, no) => {
    buffer.addEventListener("updateend", ok, { once: true });
    buffer.addEventListener("error", no, { once: true });
    buffer.appendBuffer(value);
  });
  return {
    push(value) {
      queue = queue.then(async (buffer) => {
        if (failed) return buffer;
        try {
          await append(buffer, value);
          el.dataset.appends = String(Number(el.dataset.appends) + 1);
        } catch {
          failed = true;
        }
        return buffer;
      });
    },
    async finish() {
      await queue;
      if (!failed) source.endOfStream();
      return !failed;
    },
  };
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
