// Sharing files: the drop zone, the file picker and paste; one card per file with its
// progress (stage, bytes, speed), then its share link, a copy button, a QR code and the
// number of signed store receipts.

import { qrSvg } from "/pkg/past_node.js";
import { bytes, copyButton, h, setText, speed } from "./format.js";

const $ = (id) => document.getElementById(id);

const MESSAGES = {
  "over-quota": "You have used your storage quota in this tab: reclaim a file you shared first.",
  "too-large": "This file is larger than the network accepts.",
  "storage-full": "Not enough nodes have room for this file right now.",
  refused: "The network refused the file.",
  failed: "The file could not be stored.",
};

let inProgress = 0;

/** Whether a file is being shared (its insert has not ended). */
export function sharing() {
  return inProgress > 0;
}

/** Wires the drop zone, picker and paste to `insert(file, options)` of `node`;
 * `onInserted(result)` runs after each file is stored. */
export function setupShare(node, onInserted) {
  const drop = $("drop"), input = $("file-input");
  const add = (files) => { for (const file of files) share(node, file, onInserted); };
  drop.addEventListener("click", () => input.click());
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
  });
  input.addEventListener("change", () => { add([...input.files]); input.value = ""; });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    add([...e.dataTransfer.files]);
  });
  document.addEventListener("paste", (e) => {
    if (e.target.closest?.("input, textarea")) return;
    const files = [...(e.clipboardData?.files ?? [])];
    if (files.length) { e.preventDefault(); add(files); }
  });
}

/** One file: its card, the insert with progress, then the link or the error. */
async function share(node, file, onInserted) {
  const k = Number($("k-select").value);
  const encrypt = $("encrypt-toggle").checked;
  const card = uploadCard(file, k, encrypt);
  $("uploads").prepend(card.el);
  const started = performance.now();
  inProgress += 1;
  try {
    const result = await node.insert(file, {
      k, encrypt, name: file.name,
      onProgress: (p) => card.progress(p, performance.now() - started, k, encrypt),
    });
    card.done(result);
    onInserted(result);
  } catch (err) {
    card.failed(err);
  } finally {
    inProgress -= 1;
  }
}

function uploadCard(file, k, encrypt) {
  const bar = h("progress", { max: 1, value: 0, "aria-label": `Progress of ${file.name}` });
  const stage = h("span", { class: "stage" }, encrypt ? "Encrypting…" : "Reading…");
  const figures = h("span", { class: "figures" }, `0 of ${bytes(file.size)}`);
  const result = h("div", { class: "result" });
  const el = h("li", { class: "upload", "data-testid": "upload", "data-state": "working" },
    h("p", { class: "file-name" }, file.name),
    h("div", { class: "progress", "data-testid": "progress" }, bar, h("p", { class: "stage-line" }, stage, figures)),
    result);
  return {
    el,
    progress({ stage: name, bytes: done, total }, elapsedMs, k, encrypted) {
      const storing = name === "storing";
      bar.value = total ? (storing ? 0.1 + 0.9 * done / total : 0.1 * done / total) : 0;
      const words = storing
        ? (done >= total ? "Collecting signed receipts…" : `Storing on ${k} node${k === 1 ? "" : "s"}…`)
        : (encrypted ? "Encrypting and hashing…" : "Hashing…");
      setText(stage, words);
      const rate = elapsedMs > 500 ? ` · ${speed(done / (elapsedMs / 1000))}` : "";
      setText(figures, `${bytes(done)} of ${bytes(total)}${rate}`);
    },
    done(r) {
      el.dataset.state = "done";
      bar.value = 1;
      setText(stage, `Stored on ${r.k} node${r.k === 1 ? "" : "s"} · ${r.receipts} signed receipt${r.receipts === 1 ? "" : "s"}`);
      setText(figures, bytes(r.size));
      result.replaceChildren(linkBlock(r.link, r.encrypted));
    },
    failed(err) {
      el.dataset.state = "failed";
      setText(stage, "Not shared");
      result.replaceChildren(h("p", { class: "error", role: "alert", "data-testid": "error-message", "data-code": err.code ?? "failed" },
        MESSAGES[err.code] ? `${MESSAGES[err.code]} (${err.message})` : String(err.message ?? err)));
    },
  };
}

/** The share link of a file: the link, a copy button and a QR code. */
export function linkBlock(link, encrypted) {
  const field = h("input", { class: "mono link", readonly: true, value: link, "data-testid": "share-link",
    "aria-label": "Share link", onfocus: (e) => e.target.select() });
  const qr = h("div", { class: "qr", "data-testid": "qr-code", role: "img", "aria-label": "QR code of the share link" });
  try {
    qr.innerHTML = qrSvg(link);
  } catch {
    qr.hidden = true;
  }
  const note = encrypted
    ? "Anyone with this link can open the file; the nodes storing it cannot."
    : "Public: the nodes storing this file can read it.";
  return h("div", { class: "link-block" }, h("div", { class: "link-row" }, field, copyButton(link)), qr, h("p", { class: "muted" }, note));
}
