// Formatting shared by the page's modules: sizes, speeds, ids, dates.

const UNITS = ["B", "kB", "MB", "GB", "TB"];

/** Bytes in decimal units, e.g. "4.2 MB". */
export function bytes(n) {
  if (!Number.isFinite(n) || n < 0) return "–";
  let i = 0;
  while (n >= 1000 && i < UNITS.length - 1) { n /= 1000; i++; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${UNITS[i]}`;
}

/** A speed in bytes per second, e.g. "12 MB/s". */
export const speed = (perSecond) => `${bytes(perSecond)}/s`;

/** The first 8 hex digits of an id, e.g. "3f2c948f…". */
export const short = (id) => (id && id.length > 12 ? `${id.slice(0, 8)}…` : String(id ?? "–"));

/** A date from milliseconds since the epoch, in the reader's locale. */
export const date = (ms) => new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });

/** Sets an element's text only when it changed (no layout work otherwise). */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** Creates an element with attributes and children (strings become text). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  el.append(...children.filter((c) => c !== null && c !== undefined));
  return el;
}

/** A "Copy link" button (`data-testid` `copy-button`) that copies `link`. */
export function copyButton(link) {
  const button = h("button", { type: "button", "data-testid": "copy-button" }, "Copy link");
  button.addEventListener("click", () => copy(link, button));
  return button;
}

/** Copies `text` to the clipboard; says on `button` whether it worked. */
async function copy(text, button) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select and copy";
  }
  setTimeout(() => { button.textContent = label; }, 1500);
}
