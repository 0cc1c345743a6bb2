// The network view: the ring of nodeIds drawn as a circle (RingView) and the routing table as
// the Pastry paper draws it (RoutingTableView). Both take the node's view (`past.node.view()`,
// built in node-wasm/src/page.rs) once a second and touch the DOM only where something changed.

const SVG = "http://www.w3.org/2000/svg";
const RADIUS = 160;
const LEAF_RADIUS = 134; // the leaf set sits on an inner arc: it crowds around this node
const MAX_GAP = 4.5; // degrees between two markers on the ring, at most
const FADE_MS = 10_000;
const ROLE_ORDER = ["leaf", "table", "near"]; // a peer's marker shows its first role here, else "other"
const LEGEND = [
  ["self", "This node"],
  ["leaf", "Leaf set"],
  ["table", "Routing table"],
  ["near", "Neighborhood (by RTT)"],
  ["other", "Other peer"],
];
let instances = 0;

const short = (id) => `${id.slice(0, 8)}…`;
const hexDigit = (d) => d.toString(16);
const rttText = (rtt) => (rtt == null ? "RTT unknown" : `${rtt.toFixed(1)} ms`);
/** Position of `id` on the ring in degrees, 0 at the top, clockwise. */
const angleOf = (id) => (parseInt(id.slice(0, 8), 16) / 2 ** 32) * 360;

function polar(degrees, r) {
  const a = (degrees * Math.PI) / 180;
  return [r * Math.sin(a), -r * Math.cos(a)];
}

function svg(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.append(node);
  return node;
}

function html(name, attrs = {}, parent = null) {
  const node = document.createElement(name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.append(node);
  return node;
}

/** Sets an attribute only when its value changes. */
function setAttr(node, name, value) {
  const text = String(value);
  if (node.getAttribute(name) !== text) node.setAttribute(name, text);
}

/** Sets a text only when it changes. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** Digit `index` (0 = most significant) of a 128-bit id read as digits of `bits` bits. */
function digit(id, index, bits) {
  const start = index * bits;
  const width = Math.min(bits, 128 - start);
  return Number((id >> BigInt(128 - start - width)) & ((1n << BigInt(width)) - 1n));
}

/** Whether every routing table entry sits in its slot when ids are read as digits of `bits` bits. */
function fitsTable(view, bits) {
  const own = BigInt(`0x${view.nodeId}`);
  return view.routingTable.every(({ row, column, id }) => {
    const other = BigInt(`0x${id}`);
    const shared = 128 - (own ^ other).toString(2).length;
    return Math.floor(shared / bits) === row && digit(other, row, bits) === column;
  });
}

/** The digit size b: `view.digitBits` when the view has it, else the size its table fits (4 first). */
function digitBits(view) {
  if (Number.isInteger(view.digitBits)) return view.digitBits;
  return [4, 1, 2, 3, 5, 6, 7, 8].find((bits) => fitsTable(view, bits)) ?? 4;
}

/**
 * Display positions for sorted points `{x, weight}` that keep each point at least `offsets[i] -
 * offsets[i - 1]` from the one before and move them as little as possible: weighted
 * pool-adjacent-violators on x_i - offsets_i. A heavy point barely moves.
 */
function spread(points, offsets) {
  const blocks = [];
  points.forEach(({ x, weight }, i) => {
    blocks.push({ value: x - offsets[i], weight, count: 1 });
    while (blocks.length > 1 && blocks.at(-2).value > blocks.at(-1).value) {
      const b = blocks.pop();
      const a = blocks.at(-1);
      a.value = (a.value * a.weight + b.value * b.weight) / (a.weight + b.weight);
      a.weight += b.weight;
      a.count += b.count;
    }
  });
  return blocks.flatMap((b) => Array(b.count).fill(b.value)).map((z, i) => z + offsets[i]);
}

/** Every peer the view mentions, by id: its roles, RTT and connection. */
function peersOf(view) {
  const peers = new Map();
  const peer = (id) => {
    if (!peers.has(id)) peers.set(id, { id, roles: new Set(), slots: [], rtt: null, conn: null });
    return peers.get(id);
  };
  for (const id of [...view.leafSet.counterClockwise, ...view.leafSet.clockwise]) peer(id).roles.add("leaf");
  for (const e of view.routingTable) {
    const p = peer(e.id);
    p.roles.add("table");
    p.slots.push(`row ${e.row}, digit ${hexDigit(e.column)}`);
    p.rtt ??= e.rttMs;
  }
  for (const e of view.neighborhood) {
    const p = peer(e.id);
    p.roles.add("near");
    p.rtt ??= e.rttMs;
  }
  for (const c of view.connections) {
    const p = peer(c.id);
    p.conn = c;
    p.rtt ??= c.rttMs;
  }
  peers.delete(view.nodeId);
  return peers;
}

function kindOf(peer) {
  return ROLE_ORDER.find((role) => peer.roles.has(role)) ?? "other";
}

function describe(peer) {
  const roles = [];
  if (peer.roles.has("leaf")) roles.push("leaf set");
  if (peer.roles.has("table")) roles.push(`routing table (${peer.slots.join("; ")})`);
  if (peer.roles.has("near")) roles.push("neighborhood");
  const conn = peer.conn ? `, connection ${peer.conn.state} (${peer.conn.direction}, via ${peer.conn.via})` : "";
  return `${short(peer.id)}: ${roles.join(", ") || "connected peer"}, ${rttText(peer.rtt)}${conn}`;
}

/**
 * Angles (degrees from this node) of `ids` on one track, spread so that close ids stay apart:
 * the ring is cut opposite this node, which barely moves (weight 1e6) and takes `ownRoom` gaps;
 * the cut's ends are fixed points.
 */
function spreadTrack(ownId, ids, ownRoom) {
  const own = angleOf(ownId);
  const points = [
    { id: null, x: -180, weight: 1e9, room: 1 },
    { id: ownId, x: 0, weight: 1e6, room: ownRoom },
    ...ids.map((id) => ({ id, x: ((angleOf(id) - own + 540) % 360) - 180, weight: 1, room: 1 })),
    { id: null, x: 180, weight: 1e9, room: 1 },
  ].sort((a, b) => a.x - b.x);
  const rooms = points.map((p, i) => (i === 0 ? 0 : (points[i - 1].room + p.room) / 2));
  const gap = Math.min(MAX_GAP, 360 / (rooms.reduce((a, b) => a + b) + 1));
  let sum = 0;
  const xs = spread(points, rooms.map((room) => (sum += room * gap)));
  return new Map(points.flatMap((p, i) => (p.id ? [[p.id, xs[i]]] : [])));
}

/**
 * Where each node is drawn, `{angle, r}` by id: the leaf set on an inner track, this node (larger
 * marker) and the other peers on the ring, each track spread around this node.
 */
function layout(ownId, peers) {
  const own = angleOf(ownId);
  const leaves = [...peers.values()].filter((p) => p.roles.has("leaf")).map((p) => p.id);
  const others = [...peers.values()].filter((p) => !p.roles.has("leaf")).map((p) => p.id);
  const places = new Map();
  for (const [id, x] of spreadTrack(ownId, others, 2)) places.set(id, { angle: own + x, r: RADIUS });
  for (const [id, x] of spreadTrack(ownId, leaves, 1)) {
    if (id !== ownId) places.set(id, { angle: own + x, r: LEAF_RADIUS });
  }
  return places;
}

/** The inner arc under the leaf set, from its farthest counter-clockwise to its farthest clockwise node. */
function leafArc(view, places) {
  const own = places.get(view.nodeId).angle;
  const xs = [...view.leafSet.counterClockwise, ...view.leafSet.clockwise]
    .filter((id) => places.has(id))
    .map((id) => places.get(id).angle - own);
  if (xs.length === 0) return "";
  const [from, to] = [Math.min(0, ...xs), Math.max(0, ...xs)];
  const [x1, y1] = polar(own + from, LEAF_RADIUS).map((v) => v.toFixed(1));
  const [x2, y2] = polar(own + to, LEAF_RADIUS).map((v) => v.toFixed(1));
  return `M${x1} ${y1}A${LEAF_RADIUS} ${LEAF_RADIUS} 0 ${to - from > 180 ? 1 : 0} 1 ${x2} ${y2}`;
}

function defineShapes(defs, prefix) {
  const shape = (kind, make) => make(svg("g", { id: `${prefix}-${kind}` }, defs));
  shape("self", (s) => {
    svg("circle", { r: 11, class: "net-halo" }, s);
    svg("circle", { r: 8 }, s);
  });
  shape("leaf", (s) => svg("path", { d: "M0-7L7 0L0 7L-7 0Z" }, s));
  shape("table", (s) => svg("rect", { x: -5.5, y: -5.5, width: 11, height: 11 }, s));
  shape("near", (s) => svg("circle", { r: 5 }, s));
  shape("other", (s) => svg("path", { d: "M0-6L6 5H-6Z" }, s));
  const head = svg("marker", {
    id: `${prefix}-head`, viewBox: "0 0 10 10", refX: 17, refY: 5,
    markerWidth: 10, markerHeight: 10, markerUnits: "userSpaceOnUse", orient: "auto",
  }, defs);
  svg("path", { d: "M0 0L10 5L0 10Z", class: "net-route-head" }, head);
}

/** A small legend: each marker's shape next to its meaning, and the line styles. */
function legend(prefix) {
  const list = html("ul", { class: "net-legend", "aria-label": "Legend" });
  const item = (draw, text) => {
    const li = html("li", {}, list);
    const icon = svg("svg", { viewBox: "-13 -13 26 26", width: 18, height: 18, "aria-hidden": "true" }, li);
    draw(icon);
    li.append(text);
  };
  for (const [kind, text] of LEGEND) {
    item((s) => svg("use", { href: `#${prefix}-${kind}`, class: `net-m net-m-${kind}` }, s), text);
  }
  const line = (cls) => (s) => svg("line", { x1: -12, y1: 0, x2: 12, y2: 0, class: cls }, s);
  item(line("net-link net-open"), "Open connection");
  item(line("net-link"), "Connecting");
  item(line("net-route-path"), "Route of a lookup");
  return list;
}

/**
 * Keyed update of the children of `parent`: `items` maps a key to data, `create()` builds the
 * element of a new key, `patch(element, data)` brings it up to date; elements of gone keys go.
 */
function reconcile(elements, items, parent, create, patch) {
  for (const [key, element] of elements) {
    if (!items.has(key)) {
      element.remove();
      elements.delete(key);
    }
  }
  for (const [key, data] of items) {
    if (!elements.has(key)) elements.set(key, parent.appendChild(create()));
    patch(elements.get(key), data);
  }
}

/**
 * The ring: this node, its leaf set, routing table entries, neighborhood and connections on a
 * circle of nodeIds (0 at the top, clockwise), with a legend, and the last traced route.
 */
export class RingView {
  /** Builds an `<svg data-testid="ring">` and its legend inside `container`. */
  constructor(container) {
    this.prefix = `net-ring-${++instances}`;
    this.view = null;
    this.places = new Map();
    this.marks = new Map();
    this.links = new Map();
    this.route = null;
    this.routeKey = "";
    this.fadeTimer = 0;
    container.classList.add("net", "net-ring");
    this.svg = svg("svg", {
      "data-testid": "ring", role: "img", viewBox: "-200 -200 400 400", "aria-label": "Ring: waiting for the node",
    }, container);
    defineShapes(svg("defs", {}, this.svg), this.prefix);
    svg("circle", { r: RADIUS, class: "net-circle" }, this.svg);
    this.leafArc = svg("path", { class: "net-leaf-arc" }, this.svg);
    this.drawCompass();
    this.linkLayer = svg("g", {}, this.svg);
    this.routeLayer = svg("g", { class: "net-route" }, this.svg);
    this.markLayer = svg("g", {}, this.svg);
    this.self = svg("use", { href: `#${this.prefix}-self`, class: "net-m net-m-self" }, this.markLayer);
    this.selfTitle = svg("title", {}, this.self);
    this.center = [0, 1, 2].map((i) => svg("text", { y: -14 + i * 20, class: i === 1 ? "net-center net-id" : "net-center" }, this.svg));
    container.append(legend(this.prefix));
    this.live = html("p", { class: "net-sr", "aria-live": "polite" }, container);
  }

  /** Marks 0, 4, 8 and c: where ids starting with those hex digits sit. */
  drawCompass() {
    ["0", "4", "8", "c"].forEach((label, i) => {
      const [x, y] = polar(i * 90, RADIUS + 28).map((v) => v.toFixed(1));
      svg("text", { x, y, class: "net-compass", "aria-hidden": "true" }, this.svg).textContent = `${label}…`;
    });
  }

  /** Redraws from the node's view; elements change only where the view did. */
  update(view) {
    this.view = view;
    const peers = peersOf(view);
    this.places = layout(view.nodeId, peers);
    setAttr(this.leafArc, "d", leafArc(view, this.places));
    const [sx, sy] = this.position(view.nodeId);
    setAttr(this.self, "x", sx.toFixed(1));
    setAttr(this.self, "y", sy.toFixed(1));
    setText(this.selfTitle, `${short(view.nodeId)}: this node`);
    this.updateMarks(peers);
    this.updateLinks(view, sx, sy);
    this.updateText(peers);
    if (this.route) this.drawRoute();
  }

  updateMarks(peers) {
    const create = () => {
      const use = svg("use");
      svg("title", {}, use);
      return use;
    };
    reconcile(this.marks, peers, this.markLayer, create, (use, peer) => {
      const kind = kindOf(peer);
      const [x, y] = this.position(peer.id);
      setAttr(use, "href", `#${this.prefix}-${kind}`);
      setAttr(use, "class", `net-m net-m-${kind}`);
      setAttr(use, "x", x.toFixed(1));
      setAttr(use, "y", y.toFixed(1));
      setText(use.firstChild, describe(peer));
    });
  }

  updateLinks(view, sx, sy) {
    const conns = new Map(view.connections.filter((c) => c.id !== view.nodeId).map((c) => [c.id, c]));
    reconcile(this.links, conns, this.linkLayer, () => svg("line"), (line, conn) => {
      const [x, y] = this.position(conn.id);
      setAttr(line, "class", conn.state === "open" ? "net-link net-open" : "net-link");
      setAttr(line, "x1", sx.toFixed(1));
      setAttr(line, "y1", sy.toFixed(1));
      setAttr(line, "x2", x.toFixed(1));
      setAttr(line, "y2", y.toFixed(1));
    });
  }

  updateText(peers) {
    const view = this.view;
    const open = view.connections.filter((c) => c.state === "open").length;
    const leaves = view.leafSet.counterClockwise.length + view.leafSet.clockwise.length;
    let label = `Ring: this node ${short(view.nodeId)}, ${leaves} leaf-set nodes, ` +
      `${view.routingTable.length} routing-table entries, ${view.neighborhood.length} neighborhood nodes, ` +
      `${open} open connections`;
    if (this.route) label += `. ${this.routeSummary()}`;
    setAttr(this.svg, "aria-label", label);
    const [top, middle, bottom] = this.center;
    setText(middle, short(view.nodeId));
    if (this.route) {
      const text = this.route.label;
      setText(top, text.length > 26 ? `${text.slice(0, 25)}…` : text);
      setText(bottom, this.hopsText());
    } else {
      setText(top, "this node");
      setText(bottom, `${peers.size} peers · ${open} open`);
    }
  }

  /** Where `id` is drawn, `{angle, r}`: its spread place when the view has it, else its own angle on the ring. */
  place(id) {
    return this.places.get(id) ?? { angle: angleOf(id), r: RADIUS };
  }

  position(id) {
    const { angle, r } = this.place(id);
    return polar(angle, r);
  }

  /**
   * Draws a route on the ring: `ids` from this node to the node that answered, each hop an arrow
   * with its number. It stays until the next trace and fades after about ten seconds.
   */
  traceRoute(ids, { label = "route" } = {}) {
    this.route = { ids: [...ids], label };
    this.routeLayer.classList.remove("net-faded");
    clearTimeout(this.fadeTimer);
    this.fadeTimer = setTimeout(() => this.routeLayer.classList.add("net-faded"), FADE_MS);
    this.drawRoute();
    this.live.textContent = this.routeSummary();
    if (this.view) this.updateText(peersOf(this.view));
  }

  /** Draws the route's arrows and hop numbers again when the positions of its nodes moved. */
  drawRoute() {
    const points = this.route.ids.map((id) => this.position(id));
    const key = `${this.route.label} ${points.flat().map((v) => v.toFixed(1))}`;
    if (key === this.routeKey) return;
    this.routeKey = key;
    this.routeLayer.replaceChildren();
    points.slice(1).forEach(([x, y], i) => {
      const [px, py] = points[i];
      const cx = ((px + x) / 2) * 0.4;
      const cy = ((py + y) / 2) * 0.4;
      svg("path", {
        d: `M${px.toFixed(1)} ${py.toFixed(1)}Q${cx.toFixed(1)} ${cy.toFixed(1)} ${x.toFixed(1)} ${y.toFixed(1)}`,
        class: "net-route-path", "marker-end": `url(#${this.prefix}-head)`,
      }, this.routeLayer);
    });
    this.route.ids.forEach((id, i) => {
      if (i === 0 && this.route.ids.length > 1) return;
      const { angle, r } = this.place(id);
      const [x, y] = polar(angle, r + 17);
      svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 8, class: "net-hop" }, this.routeLayer);
      svg("text", { x: x.toFixed(1), y: y.toFixed(1), class: "net-hop-number" }, this.routeLayer).textContent = String(i);
    });
  }

  hopsText() {
    const hops = this.route.ids.length - 1;
    if (hops === 0) return "answered by this node";
    return `${hops} hop${hops === 1 ? "" : "s"} → ${short(this.route.ids.at(-1))}`;
  }

  routeSummary() {
    const path = this.route.ids.map(short).join(" → ");
    return `Route ${this.route.label}: ${this.hopsText()} (${path})`;
  }
}

/**
 * The routing table as the paper draws it: row r holds nodes sharing the first r digits with this
 * node, column d those whose next digit is d; this node's own digit is marked, empty cells show.
 */
export class RoutingTableView {
  /** Builds a scrollable `<table data-testid="routing-table">` with a caption inside `container`. */
  constructor(container) {
    container.classList.add("net", "net-table-view");
    const scroll = html("div", {
      class: "net-table-scroll", tabindex: "0", role: "region", "aria-label": "Routing table, scrolls sideways",
    }, container);
    this.table = html("table", { "data-testid": "routing-table", class: "net-table" }, scroll);
    this.caption = html("caption", {}, this.table);
    this.caption.textContent = "Routing table: waiting for the node";
    this.head = html("tr", {}, html("thead", {}, this.table));
    this.body = html("tbody", {}, this.table);
    this.cells = [];
    this.own = null;
    this.bits = 0;
    html("p", { class: "net-note" }, container).textContent = "Row: digits shared with this node. " +
      "Column: the next digit. Shaded: this node's own digit. Hover a cell for its round-trip time.";
  }

  /** Shows the table of the node's view, rewriting only the cells that changed. */
  update(view) {
    const bits = digitBits(view);
    if (view.nodeId !== this.own || bits !== this.bits) this.reset(view.nodeId, bits);
    const entries = new Map(view.routingTable.map((e) => [`${e.row},${e.column}`, e]));
    const highest = Math.max(-1, ...view.routingTable.map((e) => e.row));
    this.setRows(Math.min(Math.ceil(128 / bits), highest + 2));
    this.cells.forEach((row, r) => row.forEach((cell, c) => this.patch(cell, r, c, entries.get(`${r},${c}`))));
  }

  reset(own, bits) {
    this.own = own;
    this.ownBig = BigInt(`0x${own}`);
    this.bits = bits;
    this.caption.textContent = `Routing table of ${short(own)}`;
    const corner = html("th", { scope: "col", class: "net-corner" });
    corner.textContent = "row";
    const columns = Array.from({ length: 2 ** bits }, (_, d) => {
      const th = html("th", { scope: "col" });
      th.textContent = hexDigit(d);
      return th;
    });
    this.head.replaceChildren(corner, ...columns);
    this.body.replaceChildren();
    this.cells = [];
  }

  setRows(count) {
    while (this.cells.length > count) {
      this.body.lastChild.remove();
      this.cells.pop();
    }
    while (this.cells.length < count) {
      const tr = html("tr", {}, this.body);
      const row = this.cells.length;
      html("th", { scope: "row", title: `shares ${row} digit${row === 1 ? "" : "s"} with this node` }, tr).textContent = String(row);
      this.cells.push(Array.from({ length: 2 ** this.bits }, () => ({ td: html("td", {}, tr), key: null })));
    }
  }

  patch(cell, row, column, entry) {
    const own = digit(this.ownBig, row, this.bits) === column;
    const key = own ? "own" : entry ? `${entry.id} ${rttText(entry.rttMs)}` : "empty";
    if (cell.key === key) return;
    cell.key = key;
    const where = `row ${row}, digit ${hexDigit(column)}`;
    const [kind, shown, spoken] = own
      ? ["net-own", hexDigit(column), `${where}: this node's own digit`]
      : entry
        ? ["net-filled", this.digitsOf(entry.id, row), `${where}: ${short(entry.id)}, ${rttText(entry.rttMs)}`]
        : ["net-empty", "", `${where}: empty`];
    cell.td.className = kind;
    cell.td.title = spoken;
    const visible = html("span", { "aria-hidden": "true" });
    visible.textContent = shown;
    const hidden = html("span", { class: "net-sr" });
    hidden.textContent = spoken;
    cell.td.replaceChildren(visible, hidden);
  }

  /** Four hex digits of `id` from the digit of `row` on; the shared prefix before it is elided. */
  digitsOf(id, row) {
    const start = Math.min(Math.floor((row * this.bits) / 4), id.length - 4);
    return `${start > 0 ? "…" : ""}${id.slice(start, start + 4)}`;
  }
}
