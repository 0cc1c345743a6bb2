// Reloading when the node advises it: its lifetime budget of peer connections is nearly used
// up, or the server serves a new version of the page (which the nodes of that version need
// to talk to it); a reload keeps the tab's identity and the files it stores and starts a
// fresh budget. The page reloads itself only while it is hidden and nothing is in progress (no file
// being shared, no share link open), so nobody loses what they are looking at; and at most
// once per RELOAD_GAP_MS, so a budget too small to last does not reload in a loop. A visible
// tab says so in its status and waits for its user.

const KEY = "past-auto-reload-at";
const RELOAD_GAP_MS = 10 * 60 * 1000;

/** Reloads the page when `advised()` holds, the tab is hidden and `busy()` does not hold;
 * checked on each call of the returned function and when the tab's visibility changes. */
export function setupAutoReload(advised, busy) {
  const check = () => {
    if (!document.hidden || busy() || recentlyReloaded() || !advised()) return;
    sessionStorage.setItem(KEY, String(Date.now()));
    location.reload();
  };
  document.addEventListener("visibilitychange", check);
  return check;
}

/** Whether this tab reloaded itself less than RELOAD_GAP_MS ago. */
function recentlyReloaded() {
  const at = Number(sessionStorage.getItem(KEY));
  return at > 0 && Date.now() - at < RELOAD_GAP_MS;
}
