// "My files" (what this identity shared from this browser: link, receipts, reclaim) and
// "Stored here" (what this tab holds for others: counts and bytes, no names).

import { bytes, copyButton, date, h, setText } from "./format.js";

const $ = (id) => document.getElementById(id);

/** The latest redraw: an earlier one that answers late is dropped. */
let drawing = 0;

/** Redraws the list of this identity's files. */
export async function renderMyFiles(node) {
  const mine = ++drawing;
  const files = await node.files();
  if (mine !== drawing) return;
  files.sort((a, b) => b.created - a.created);
  $("mine-empty").hidden = files.length > 0;
  $("my-files").replaceChildren(...files.map((f) => fileItem(node, f)));
}

function fileItem(node, f) {
  const reclaim = h("button", { type: "button", class: "danger", "data-testid": "reclaim-button" }, "Reclaim");
  const outcome = h("p", { class: "outcome", role: "status" });
  const actions = h("div", { class: "actions" }, copyButton(f.link), reclaim);
  reclaim.addEventListener("click", () => confirmReclaim(node, f, actions, outcome));
  return h("li", { class: "my-file", "data-testid": "my-file", "data-file-id": f.fileId },
    h("p", { class: "file-name" }, f.name || f.fileId),
    h("p", { class: "muted" },
      `${bytes(f.size)} · ${f.k} copies · ${f.receipts} receipts · ${f.encrypted ? "encrypted" : "public"} · ${date(f.created)}`),
    h("input", { class: "mono link", readonly: true, value: f.link, "aria-label": `Share link of ${f.name}`,
      onfocus: (e) => e.target.select() }),
    actions, outcome);
}

/** Asks for confirmation in place, then reclaims and shows the reclaim receipts. */
function confirmReclaim(node, f, actions, outcome) {
  const yes = h("button", { type: "button", class: "danger", "data-testid": "reclaim-confirm" }, "Yes, reclaim");
  const no = h("button", { type: "button" }, "Cancel");
  const question = h("p", { class: "confirm" },
    `Reclaim “${f.name || f.fileId}”? Every node deletes its copy and the link stops working.`);
  const saved = [...actions.children];
  actions.replaceChildren(question, yes, no);
  yes.focus();
  no.addEventListener("click", () => { actions.replaceChildren(...saved); saved.at(-1).focus(); });
  yes.addEventListener("click", async () => {
    yes.disabled = no.disabled = true;
    setText(outcome, "Reclaiming…");
    try {
      const r = await node.reclaim(f.fileId);
      setText(outcome, `Reclaimed: ${r.receipts} signed reclaim receipt${r.receipts === 1 ? "" : "s"}.`);
      outcome.dataset.testid = "reclaim-receipts";
      actions.replaceChildren();
    } catch (err) {
      setText(outcome, `Not reclaimed: ${err.message ?? err}`);
      actions.replaceChildren(...saved);
    }
  });
}

/** The summary of what this tab stores for others. */
export function renderStored(stored) {
  const parts = [
    `${stored.replicas} replica${stored.replicas === 1 ? "" : "s"} (${bytes(stored.bytesUsed)})`,
    `${stored.cached} cached cop${stored.cached === 1 ? "y" : "ies"} (${bytes(stored.bytesCached)})`,
  ];
  // Reads of other people that passed this tab on their lookup's route (see README).
  const relayed = stored.bytesRelayed > 0 ? ` ${bytes(stored.bytesRelayed)} of other people's downloads passed through this tab.` : "";
  setText($("stored-here"),
    `${parts.join(" and ")} held for other people; ${bytes(stored.capacity)} offered, ${bytes(stored.free)} free. ` +
    "Encrypted files are unreadable here: neither their names nor their contents are stored in the clear." + relayed);
}
