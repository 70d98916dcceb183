// The AOS console page: a hash router over the console's JSON API, live tails over server-sent events.
// Plain DOM, no library. Every write asks for confirmation, carries the session's CSRF header, and is
// refused by the console and by the kernel when the token cannot do it, whatever this page shows.

let SESSION = null;          // /api/session: csrf, permissions (can), audit, scheduler
let cleanups = [];           // timers and event sources of the current view

const $view = () => document.getElementById("view");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path) {
  const reply = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await reply.json().catch(() => ({ error: "Bad reply", message: reply.statusText }));
  if (!reply.ok) throw new Error(`${body.error}: ${body.message}`);
  return body;
}

async function post(path, body) {
  const reply = await fetch(path, {
    method: "POST", body: JSON.stringify(body || {}),
    headers: { "Content-Type": "application/json", "X-AOS-CSRF": SESSION.csrf },
  });
  const out = await reply.json().catch(() => ({ error: "Bad reply", message: reply.statusText }));
  if (!reply.ok) throw new Error(`${out.error}: ${out.message}`);
  return out;
}

function toast(text, bad = false) {
  const node = el("div", { class: bad ? "bad" : "", "data-testid": "toast" }, text);
  document.getElementById("toast").append(node);
  setTimeout(() => node.remove(), bad ? 9000 : 4000);
}

function confirmed(title, text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

// one write: confirm, call, report; the audit log gets it whatever the answer
async function act(title, text, path, body, after) {
  if (!(await confirmed(title, `${text} It is recorded in the audit log (${SESSION.audit}).`))) return null;
  try {
    const out = await post(path, body);
    toast(`${title}: done`);
    if (after) after(out);
    return out;
  } catch (err) {
    toast(`${title} refused: ${err.message}`, true);
    return null;
  }
}

const can = (what) => SESSION && SESSION.can[what];
const enc = encodeURIComponent;

function ago(ms) {
  if (!ms) return "–";
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return `${Math.round(s)}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

function age(ms) {
  if (ms === null || ms === undefined) return "waiting";
  const s = ms / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} m ${Math.round(s % 60)} s`;
}

function size(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i ? `${n.toFixed(1)} ${units[i]}` : `${n} B`;
}

// label/value pairs of a two-column grid: each item its own cell (adjacent text would merge into one)
const cells = (...items) => items.map((x) => (x instanceof Node ? x : el("span", {}, x)));
const pretty = (v) => JSON.stringify(v, null, 2);
const badge = (state) => el("span", { class: `badge ${state}`, "data-testid": "state" }, state);

function every(ms, fn) {
  const id = setInterval(fn, ms);
  cleanups.push(() => clearInterval(id));
}

function live(path, handlers) {
  const source = new EventSource(path);
  for (const [name, fn] of Object.entries(handlers)) source.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  cleanups.push(() => source.close());
  return source;
}

function parseHash() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query || "") };
}

// --- views ----------------------------------------------------------------------------------------------

const viaScheduler = () => SESSION && SESSION.scheduler.connected;

async function schedulerUniversesView(view) {
  const table = el("tbody");
  view.append(el("h1", {}, "Universes"),
    el("table", { "data-testid": "universes" },
      el("thead", {}, el("tr", {}, ["universe", "name", "worlds", "running", "moving", "waiting", "stored", "world quota",
        "byte quota"].map((h, i) => el("th", { class: i > 1 ? "num" : "" }, h)))), table),
    el("p", { class: "muted" }, "From the scheduler: worlds as placed, stored bytes as the hosts last measured them (journals), quotas (0 = none)."));
  async function refresh() {
    const { universes } = await api("/api/universes");
    table.replaceChildren(...(universes.length ? universes.map((u) => el("tr", { "data-universe": u.name },
      el("td", {}, el("a", { href: `#/worlds?universe=${enc(u.name)}` }, u.name)), el("td", {}, u.title),
      el("td", { class: "num" }, u.worlds), el("td", { class: "num" }, u.running), el("td", { class: "num" }, u.moving),
      el("td", { class: "num" }, u.waiting), el("td", { class: "num" }, size(u.storedBytes)),
      el("td", { class: "num" }, u.quota.worlds || "–"), el("td", { class: "num" }, u.quota.bytes ? size(u.quota.bytes) : "–"))) :
      [el("tr", {}, el("td", { colspan: 9, class: "empty" }, "no universes yet (aos universe create U)"))]));
  }
  await refresh();
  every(2000, () => refresh().catch(() => {}));
}

async function universesView(view) {
  if (viaScheduler()) return schedulerUniversesView(view);
  const table = el("tbody");
  view.append(el("h1", {}, "Universes"),
    el("table", { "data-testid": "universes" },
      el("thead", {}, el("tr", {}, ["universe", "worlds", "awake", "hibernated", "quarantined", "events/s",
        "CAS stored", "blobs"].map((h, i) => el("th", { class: i ? "num" : "" }, h)))), table),
    el("p", { class: "muted" }, "Events per second are measured between two refreshes of this page (every 2 s)."));
  async function refresh() {
    const { universes } = await api("/api/universes");
    table.replaceChildren(...(universes.length ? universes.map((u) => el("tr", { "data-universe": u.name },
      el("td", {}, el("a", { href: `#/worlds?universe=${enc(u.name)}` }, u.name)),
      el("td", { class: "num" }, u.worlds), el("td", { class: "num" }, u.awake),
      el("td", { class: "num" }, u.hibernated), el("td", { class: "num" }, u.quarantined),
      el("td", { class: "num", "data-testid": "rate" }, u.eventsPerSecond === null ? "…" : u.eventsPerSecond.toFixed(1)),
      el("td", { class: "num" }, u.casCounted ? size(u.casBytes) : "counting…"),
      el("td", { class: "num" }, u.casCounted ? u.casBlobs : "–"))) :
      [el("tr", {}, el("td", { colspan: 8, class: "empty" }, "no universes with worlds or blobs yet"))]));
  }
  await refresh();
  every(2000, () => refresh().catch(() => {}));
}

async function worldsView(view, query) {
  const universe = query.get("universe") || "", state = query.get("state") || "", q = query.get("q") || "";
  const sort = query.get("sort") || "activity", offset = Number(query.get("offset") || 0), limit = 100;
  const go = (changes) => {
    const next = new URLSearchParams({ universe, state, q, sort, offset: 0, ...changes });
    for (const [k, v] of [...next]) if (!v || v === "0") next.delete(k);
    location.hash = `#/worlds?${next}`;
  };
  const universes = can("allUniverses") ? (await api("/api/universes")).universes.map((u) => u.name)
    : [SESSION.can.universe];
  const search = el("input", { type: "search", placeholder: "id or name", value: q, "data-testid": "filter-name",
    onchange: (e) => go({ q: e.target.value }) });
  view.append(el("h1", {}, "Worlds"), el("div", { class: "filters" },
    el("select", { "data-testid": "filter-universe", onchange: (e) => go({ universe: e.target.value }) },
      el("option", { value: "" }, "all universes"),
      universes.map((u) => el("option", { value: u, selected: u === universe }, u))),
    el("select", { "data-testid": "filter-state", onchange: (e) => go({ state: e.target.value }) },
      (viaScheduler() ? ["", "running", "moving", "waiting"] : ["", "awake", "hibernated", "quarantined"])
        .map((s) => el("option", { value: s, selected: s === state }, s || "any state"))),
    search,
    el("select", { "data-testid": "sort", onchange: (e) => go({ sort: e.target.value }) },
      [["activity", "last activity"], ["id", "id"], ["name", "name"], ["journal", "journal height"]]
        .map(([v, t]) => el("option", { value: v, selected: v === sort }, `sort: ${t}`)))));
  const params = new URLSearchParams({ universe, state, q, sort, offset, limit });
  const result = await api(`/api/worlds?${params}`);
  const cluster = viaScheduler();
  const rows = result.rows.map((w) => el("tr", { "data-world": w.id },
    el("td", {}, el("a", { href: `#/world/${enc(w.universe)}/${enc(w.id)}` }, w.id)),
    el("td", {}, w.name), el("td", {}, w.universe), el("td", {}, badge(w.state), w.paused ? [" ", el("span", { class: "badge quarantined" }, "paused")] : ""),
    ...(cluster ? [el("td", { "data-testid": "host" }, w.host || w.reason || "–"), el("td", { class: "num" }, w.epoch)]
      : [el("td", { class: "num" }, w.journal), el("td", {}, ago(w.lastEventMs))])));
  view.append(el("table", { "data-testid": "worlds" },
    el("thead", {}, el("tr", {}, ["world", "name", "universe", "state", ...(cluster ? ["host", "epoch"] : ["journal", "last activity"])]
      .map((h) => el("th", { class: h === "journal" || h === "epoch" ? "num" : "" }, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 6, class: "empty" }, "no world matches")))),
  el("div", { class: "pager" },
    el("button", { disabled: offset === 0, onclick: () => go({ offset: Math.max(0, offset - limit) }) }, "← previous"),
    el("span", { "data-testid": "count" }, result.total ? `${offset + 1}–${offset + result.rows.length} of ${result.total}` : "0 worlds"),
    el("button", { disabled: offset + limit >= result.total, onclick: () => go({ offset: offset + limit }) }, "next →")));
}

function notConnected(view, title, what) {
  view.append(el("h1", {}, title), el("div", { class: "card", "data-testid": "no-scheduler" },
    el("p", {}, el("strong", {}, "Not connected to a scheduler. "), SESSION.scheduler.reason, "."),
    el("p", { class: "muted" }, what)));
}

async function clusterView(view) {
  if (!viaScheduler()) return notConnected(view, "Cluster", "Start the console against aos-scheduler for its hosts, each host's lease, load, worlds per host and storage.");
  const leader = el("div", { class: "card grid", "data-testid": "leader" });
  const table = el("tbody");
  const moveForm = el("div", { class: "actions", "data-testid": "cluster-move" });
  view.append(el("h1", {}, "Cluster"), leader,
    el("table", { "data-testid": "hosts" }, el("thead", {}, el("tr", {}, ["host", "address", "lease", "load / capacity",
      "worlds", "running", "by universe", "labels", "storage"].map((h) => el("th", {}, h)))), table), moveForm,
    el("p", { class: "muted" }, "A host is listed while its etcd lease lives (it refreshes the lease itself; a host whose lease lapses is failed over). Load is the placed worlds' load; running is what the host reports. Refreshes every 2 s."));
  let drawnMove = false;
  async function refresh() {
    const c = await api("/api/cluster");
    leader.replaceChildren(...cells("leader", c.leader.id ? `${c.leader.id} at ${c.leader.address} (pid ${c.leader.pid})` : "none (an election runs)",
      "this scheduler", `${c.thisScheduler.id} ${c.thisScheduler.leading ? "(leading)" : "(standing by)"}`,
      "slots", c.slots, "etcd keys", c.etcdKeys, "worlds waiting for a host", c.waiting));
    table.replaceChildren(...(c.hosts.length ? c.hosts.map((h) => el("tr", { "data-host": h.hostId },
      el("td", {}, el("strong", {}, h.hostId), " ", h.draining ? el("span", { class: "badge quarantined", "data-testid": "draining" }, "draining") : ""),
      el("td", { class: "mono" }, h.address), el("td", {}, el("span", { class: "badge awake" }, "live")),
      el("td", { class: "num", "data-testid": "load" }, `${h.load} / ${h.capacity}`), el("td", { class: "num", "data-testid": "worlds" }, h.worlds),
      el("td", { class: "num" }, h.running),
      el("td", {}, Object.entries(h.byUniverse).map(([u, n]) => el("a", { href: `#/worlds?universe=${enc(u)}`, class: "sub" }, `${u}: ${n}`))),
      el("td", { class: "mono" }, Object.entries(h.labels).map(([k, v]) => `${k}=${v}`).join(" ") || "–"),
      el("td", { class: "mono" }, h.storage || "local only"))) :
      [el("tr", {}, el("td", { colspan: 9, class: "empty" }, "no live hosts"))]));
    if (can("move") && !drawnMove) {
      drawnMove = true;
      const world = el("input", { placeholder: "UNIVERSE/WORLD", "data-testid": "cluster-move-world" });
      const target = el("select", { "data-testid": "cluster-move-host" }, el("option", { value: "" }, "wherever placement puts it"),
        c.hosts.map((h) => el("option", { value: h.hostId }, h.hostId)));
      moveForm.append(el("strong", {}, "Move a world: "), world, "to", target, el("button", { class: "danger", "data-testid": "cluster-move-go", onclick: () => {
        const [u, w] = world.value.split("/");
        if (!u || !w) { toast("name the world UNIVERSE/WORLD", true); return; }
        moveWorld(u, w, target.value);
      } }, "Move…"));
    }
  }
  await refresh();
  every(2000, () => refresh().catch(() => {}));
}

function moveWorld(universe, worldId, toHost, after) {
  return act("Move world", `Move ${universe}/${worldId} to ${toHost || "the host placement picks"}: its host hands it over through shared storage and the new host wakes it (the scheduler's move).`,
    `/api/world/${enc(universe)}/${enc(worldId)}/move`, { toHost }, after);
}

function historyRow(e) {
  return el("tr", { "data-seq": e.seq, "data-kind": e.kind, "data-world": `${e.universeId}/${e.worldId}` },
    el("td", {}, new Date(e.atMs).toLocaleTimeString()), el("td", {}, el("span", { class: `badge ${e.kind === "failover" ? "quarantined" : "awake"}` }, e.kind)),
    el("td", {}, el("a", { href: `#/world/${enc(e.universeId)}/${enc(e.worldId)}` }, `${e.universeId}/${e.worldId}`)),
    el("td", {}, e.fromHost || "–"), el("td", {}, e.toHost), el("td", { class: "num" }, e.epoch), el("td", {}, e.reason));
}

async function schedulingView(view) {
  if (!viaScheduler()) return notConnected(view, "Scheduling history", "Start the console against aos-scheduler for its placements, moves and failovers, with their reasons.");
  const tbody = el("tbody", { "data-testid": "history-rows" });
  const status = el("span", { class: "live", "data-testid": "live-status" });
  const older = el("button", { "data-testid": "older" }, "older entries");
  view.append(el("h1", {}, "Scheduling history"),
    el("p", { class: "muted" }, "Placements, moves and failovers, newest first, as the scheduler wrote them (each in the same etcd transaction as the placement; the last 512 are kept). New ones arrive live. ", status),
    el("table", { "data-testid": "history" }, el("thead", {}, el("tr", {}, ["when", "kind", "world", "from", "to", "epoch", "reason"].map((h) => el("th", {}, h)))), tbody),
    el("div", { class: "pager" }, older));
  const { entries } = await api("/api/scheduling?limit=100");
  for (const e of entries) tbody.append(historyRow(e));
  let oldest = entries.length ? entries[entries.length - 1].seq : 0;
  older.disabled = entries.length < 100;
  older.addEventListener("click", async () => {
    const more = await api(`/api/scheduling?limit=100&before=${oldest}`);
    for (const e of more.entries) tbody.append(historyRow(e));
    if (more.entries.length) oldest = more.entries[more.entries.length - 1].seq;
    older.disabled = more.entries.length < 100;
  });
  const source = live(`/api/scheduling/live?after=${entries.length ? entries[0].seq : 0}`, {
    entry: (e) => tbody.prepend(historyRow(e)),
    lost: () => { status.textContent = "● scheduler unreachable; retrying"; },
  });
  source.onopen = () => { status.textContent = "● live"; };
}

async function auditView(view, query) {
  const universe = query.get("universe") || SESSION.can.universe || "default";
  const { where, records } = await api(`/api/audit?universe=${enc(universe)}&limit=100`);
  view.append(el("h1", {}, "Audit log"), el("p", { class: "muted" }, `Interventions made through this console, from the ${where}.`),
    el("table", { "data-testid": "audit" }, el("thead", {}, el("tr", {}, ["when", "phase", "action", "world", "session", "details"].map((h) => el("th", {}, h)))),
      el("tbody", {}, records.slice().reverse().map((r) => el("tr", { class: r.outcome && !r.outcome.ok ? "row-problem" : "" },
        el("td", {}, new Date(r.at_ms).toLocaleTimeString()), el("td", {}, r.phase), el("td", {}, r.action),
        el("td", {}, `${r.universe}/${r.world}`), el("td", { class: "mono" }, r.console_session),
        el("td", { class: "mono" }, JSON.stringify(r.outcome || r.params)))))));
}

// --- one world ---------------------------------------------------------------------------------------------

async function worldView(view, universe, worldId, query) {
  const base = `/api/world/${enc(universe)}/${enc(worldId)}`;
  const w = await api(base);
  const tab = query.get("tab") || "journal";
  const link = (t) => `#/world/${enc(universe)}/${enc(worldId)}?tab=${t}`;
  const reload = () => { const h = location.hash; location.hash = h + (h.includes("?") ? "&" : "?") + "r=" + Date.now(); };
  const actions = el("div", { class: "actions", "data-testid": "world-actions" });
  if (can("send")) actions.append(el("button", { class: "primary", "data-testid": "action-send", onclick: () => sendForm(base, view, reload) }, "Send event…"));
  if (can("snapshot")) actions.append(el("button", { "data-testid": "action-snapshot",
    onclick: () => act("Snapshot", `Snapshot world ${worldId} into CAS and journal the marker.`, `${base}/snapshot`, {}) }, "Snapshot"));
  if (can("hibernate") && w.state === "awake") actions.append(el("button", { "data-testid": "action-hibernate",
    onclick: () => act("Hibernate", `Snapshot world ${worldId} and drop it from memory (it wakes on its next event).`,
      `${base}/hibernate`, {}, (out) => { if (!out.result.hibernated) toast("not hibernated: the world is busy or asleep already"); reload(); }) }, "Hibernate"));
  if (can("fork")) actions.append(el("button", { "data-testid": "action-fork", onclick: async () => {
    const out = await act("Fork", `Start a new world from ${worldId}'s current state.`, `${base}/fork`, {});
    if (out) location.hash = `#/world/${enc(universe)}/${enc(out.result.worldId)}`;
  } }, "Fork"));
  const paused = !!w.info.paused;
  if (can("pause")) actions.append(paused
    ? el("button", { class: "primary", "data-testid": "action-resume", onclick: () => act("Resume", `Resume world ${worldId}: the inputs queued while it was paused are delivered, in order, then new ones.`, `${base}/resume`, {}, reload) }, "Resume")
    : el("button", { "data-testid": "action-pause", onclick: () => act("Pause", `Pause world ${worldId}: it takes no events, timer firings, messages or receipts until resumed; they queue (durably) and none is lost. Running effects keep running; their receipts wait too. The pause is journaled.`, `${base}/pause`, {}, reload) }, "Pause"));
  if (can("move") && w.placement) {
    const target = el("select", { "data-testid": "move-host" }, el("option", { value: "" }, "any other host"),
      (w.hosts || []).filter((h) => h !== w.placement.host).map((h) => el("option", { value: h }, h)));
    actions.append(el("span", {}, target), el("button", { class: "danger", "data-testid": "action-move",
      onclick: () => moveWorld(universe, worldId, target.value, (out) => { toast(`moving to ${out.result.hostId} (epoch ${out.result.epoch})`); }) }, "Move…"));
  }
  if (can("unquarantine") && w.state === "quarantined") actions.append(el("button", { "data-testid": "action-unquarantine",
    onclick: () => act("Release from quarantine", `Let ${worldId} try to wake again.`, `${base}/unquarantine`, {}, reload) }, "Unquarantine"));
  const info = w.info;
  view.append(
    el("h1", {}, `${worldId} `, badge(w.state), " ", paused ? el("span", { class: "badge quarantined", "data-testid": "paused" }, "paused") : "", " ", el("span", { class: "muted" }, info.name)),
    el("div", { class: "card grid", "data-testid": "world-info" }, ...cells(
      "universe", universe, "journal height", info.journalHeight, "last event", ago(info.lastEventMs),
      "manifest", el("span", { class: "mono" }, info.manifestHash),
      "latest snapshot", el("span", { class: "mono" }, info.snapshot || "–"),
      "forked from", info.forkedFrom || "–",
      ...(w.placement ? ["host", el("span", { "data-testid": "world-host" }, `${w.placement.host || "none"} (epoch ${w.placement.epoch}, ${w.placement.state})`)] : []),
      ...(paused || info.queued ? ["queued while paused", el("span", { "data-testid": "queued" }, info.queued === null || info.queued === undefined ? "–" : String(info.queued))] : []),
      ...(info.quarantined ? ["quarantined", el("span", { class: "badge quarantined" }, info.quarantined)] : []),
      ...(w.traps.length ? ["recent traps", el("pre", {}, w.traps.join("\n"))] : []))),
    actions,
    el("div", { class: "tabs" }, ["journal", "grants", "state", "effects", "receipts", "messages", "snapshots", "manifest",
      ...(w.agent ? ["agents"] : [])].map((t) => el("button", { class: t === tab ? "active" : "", "data-tab": t,
        onclick: () => { location.hash = link(t); } }, t))));
  const body = el("div", { "data-testid": `tab-${tab}` });
  view.append(body);
  const tabs = { journal: journalTab, grants: grantsTab, state: stateTab, effects: effectsTab, receipts: journalTab,
    messages: journalTab, snapshots: journalTab, manifest: manifestTab, agents: agentsTab };
  await tabs[tab](body, { base, universe, worldId, w, tab });
}

function sendForm(base, view, reload) {
  const schema = el("input", { placeholder: "schema, e.g. demo/CounterEvent@1", size: 40, "data-testid": "send-schema" });
  const value = el("textarea", { placeholder: '{"by": 1}', "data-testid": "send-value" });
  const form = el("div", { class: "card", "data-testid": "send-form" }, el("h2", {}, "Send an event"), schema, value,
    el("div", { class: "actions" }, el("button", { class: "primary", "data-testid": "send-go", onclick: async () => {
      let parsed;
      try { parsed = JSON.parse(value.value || "null"); } catch (err) { toast(`not JSON: ${err.message}`, true); return; }
      const out = await act("Send event", `Send ${schema.value} to this world (the event goes into its journal).`,
        `${base}/send`, { schema: schema.value, value: parsed });
      if (out && out.result.queued) { form.remove(); toast("queued: the world is paused; Resume delivers it"); reload(); }
      else if (out) { form.remove(); toast(`journaled at seq ${out.result.seq}` + (out.result.traps.length ? `; trapped: ${out.result.traps.map((t) => t.message).join("; ")}` : "")); }
    } }, "Send"), el("button", { onclick: () => form.remove() }, "Close")));
  view.querySelector("[data-testid=world-actions]").after(form);
  schema.focus();
}

const FILTERS = {
  journal: () => true,
  receipts: (r) => r.kind === "receipt",
  snapshots: (r) => r.kind === "snapshot",
  messages: (r) => (r.kind === "effect_intent" && String(r.summary).startsWith("sys/portal.send@")) || r.kind === "event",
};

function journalRow(row, base) {
  const detail = el("td", {}, el("span", {}, row.summary));
  detail.addEventListener("click", async () => {
    if (detail.querySelector("pre")) { detail.querySelector("pre").remove(); return; }
    let record = row.record;
    if (row.clipped) record = (await api(`${base}/record?seq=${row.at}`)).record;
    detail.append(el("pre", {}, pretty(record)));
  });
  return el("tr", { class: row.problem ? "row-problem" : "", "data-seq": row.at, "data-kind": row.kind },
    el("td", { class: "num mono" }, row.at), el("td", { class: "kind" }, row.kind), detail);
}

async function journalTab(body, { base, tab }) {
  const filter = FILTERS[tab];
  const tbody = el("tbody", { "data-testid": "journal-rows" });
  const status = el("span", { class: "live", "data-testid": "live-status" });
  const older = el("button", { "data-testid": "older" }, "older records");
  const note = {
    receipts: "Receipts among the loaded records (load older pages to see more).",
    messages: "Events in (ingress and portal messages; the journal does not record which) and portal.send intents out, among the loaded records.",
    snapshots: "Snapshot markers among the loaded records; the latest snapshot is in the summary above.",
    journal: "Newest first, 100 records a page; new records arrive live. Click a record for all of it.",
  }[tab];
  body.append(el("p", { class: "muted" }, note, " ", status),
    el("table", { "data-testid": "journal" }, el("thead", {}, el("tr", {}, el("th", { class: "num" }, "seq"), el("th", {}, "kind"), el("th", {}, "record"))), tbody),
    el("div", { class: "pager" }, older));
  const page = await api(`${base}/journal?limit=100`);
  let from = page.from;
  for (const row of page.rows.slice().reverse()) if (filter(row)) tbody.append(journalRow(row, base));
  older.disabled = from === 0;
  older.addEventListener("click", async () => {
    const more = await api(`${base}/journal?limit=100&before=${from}`);
    from = more.from;
    for (const row of more.rows.slice().reverse()) if (filter(row)) tbody.append(journalRow(row, base));
    older.disabled = from === 0;
  });
  const source = live(`${base}/tail?from=${page.to}`, {
    record: (row) => { if (filter(row)) tbody.prepend(journalRow(row, base)); },
    lost: () => { status.textContent = "● connection to the kernel lost"; },
  });
  source.onopen = () => { status.textContent = "● live"; };
}

async function grantsTab(body, { base, w, worldId }) {
  const rows = w.grants.map((g) => el("tr", { "data-grant": g.name },
    el("td", {}, el("strong", {}, g.name)), el("td", {}, g.cap),
    el("td", {}, el("span", { class: `badge ${g.active ? "on" : "off"}`, "data-testid": "grant-state" }, g.active ? "active" : "revoked")),
    el("td", { class: "mono" }, JSON.stringify(g.params)),
    el("td", {}, can("grants") ? el("button", { class: g.active ? "danger" : "primary", "data-testid": `grant-${g.active ? "revoke" : "restore"}`,
      onclick: () => act(g.active ? `Revoke grant ${g.name}` : `Restore grant ${g.name}`,
        g.active ? `World ${worldId}'s next effects through ${g.name} settle as errors ("revoked") instead of running.`
          : `World ${worldId}'s effects through ${g.name} run again.`,
        `${base}/grant`, { name: g.name, active: !g.active }, () => { location.hash = location.hash.split("&r=")[0] + "&r=" + Date.now(); }) },
      g.active ? "Revoke" : "Restore") : "")));
  body.append(el("table", { "data-testid": "grants" }, el("thead", {}, el("tr", {}, ["grant", "cap", "state", "params", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 5, class: "empty" }, "this world has no grants")))));
}

async function stateTab(body, { base, w }) {
  const out = el("div", { "data-testid": "state-value" });
  const show = async (workflow, key) => {
    const params = new URLSearchParams({ workflow });
    if (key !== undefined) params.set("key", JSON.stringify(key));
    const s = await api(`${base}/state?${params}`);
    if (s.keyed && s.cells) {
      out.replaceChildren(el("h2", {}, `${workflow}: ${s.cells.length} cell(s)`),
        el("ul", {}, s.cells.map((k) => el("li", {}, el("a", { href: "#", onclick: (e) => { e.preventDefault(); show(workflow, k); } }, JSON.stringify(k))))));
    } else {
      out.replaceChildren(el("h2", {}, key === undefined ? workflow : `${workflow} [${JSON.stringify(key)}]`), el("pre", {}, pretty(s.value)));
    }
  };
  body.append(el("ul", { "data-testid": "workflows" }, w.workflows.map((f) => el("li", {},
    el("a", { href: "#", "data-workflow": f.name, onclick: (e) => { e.preventDefault(); show(f.name); } }, f.name), f.keyed ? " (keyed: cells)" : ""))), out);
  if (w.workflows.length) await show(w.workflows[0].name);
}

async function effectsTab(body, { base }) {
  const tbody = el("tbody");
  body.append(el("p", { class: "muted" }, "Admitted effects without a receipt yet; ages refresh every second."),
    el("table", { "data-testid": "effects" }, el("thead", {}, el("tr", {}, ["effect", "grant", "emitted by", "phase", "age"].map((h) => el("th", {}, h)))), tbody));
  const refresh = async () => {
    const w = await api(base);
    tbody.replaceChildren(...(w.effects.length ? w.effects.map((e) => el("tr", { "data-intent": e.intentHash },
      el("td", { class: "mono" }, e.effect), el("td", {}, e.grant), el("td", {}, e.workflow + (e.key ? ` [${e.key}]` : "")),
      el("td", {}, e.running ? "running" : "waiting"), el("td", { class: "num" }, age(e.ageMs)))) :
      [el("tr", {}, el("td", { colspan: 5, class: "empty" }, "no effects in flight"))]));
  };
  await refresh();
  every(1000, () => refresh().catch(() => {}));
}

async function manifestTab(body, { base, w }) {
  body.append(el("h2", {}, "History"), el("table", {}, el("tbody", {}, w.manifestHistory.map((m) =>
    el("tr", {}, el("td", { class: "mono" }, m.manifestHash), el("td", {}, m.current ? "current" : ""), el("td", { class: "muted" }, m.note))))));
  if (!can("manifest")) {
    body.append(el("p", { class: "muted" }, "Reading the manifest needs a CAS capability (a kernel token); this token has none."));
    return;
  }
  const { manifest } = await api(`${base}/manifest`);
  body.append(el("h2", {}, "Canonical manifest (definitions by hash)"), el("pre", { "data-testid": "manifest" }, pretty(manifest)));
}

async function agentsTab(body, { base, universe, worldId }) {
  const { sessions } = await api(`${base}/sessions`);
  body.append(el("table", { "data-testid": "sessions" }, el("thead", {}, el("tr", {}, ["session", "status", "turns", "model", "parent"].map((h) => el("th", {}, h)))),
    el("tbody", {}, sessions.map((s) => el("tr", { "data-session": s.session },
      el("td", {}, el("a", { href: `#/agent/${enc(universe)}/${enc(worldId)}/${enc(s.session)}` }, s.session)),
      el("td", {}, s.status), el("td", { class: "num" }, s.turns), el("td", {}, `${s.provider} ${s.model}`), el("td", {}, s.parent || "–"))))));
}

// --- one agent session ------------------------------------------------------------------------------------

function agentEvent(e, session) {
  const d = e.data, sub = e.session !== session ? `[${e.session}] ` : "";
  const who = (text) => el("p", { class: "who" }, `${sub}#${e.seq} ${text}`);
  switch (e.kind) {
    case "user_input": return el("div", { class: "ev user", "data-kind": e.kind }, who("you"), el("div", {}, d.text));
    case "steering_injected": return el("div", { class: "ev user", "data-kind": e.kind }, who("steering"), el("div", {}, d.text));
    case "assistant_text_end": return el("div", { class: "ev", "data-kind": e.kind }, who(`assistant (${(d.usage || {}).input_tokens || 0} in, ${(d.usage || {}).output_tokens || 0} out)`), el("div", {}, d.text || ""));
    case "tool_call_start": return el("div", { class: "ev tool", "data-kind": e.kind }, who(`tool call ${d.tool_name}`), el("pre", {}, typeof d.arguments === "string" ? d.arguments : pretty(d.arguments)));
    case "tool_call_end": return el("div", { class: `ev tool ${d.is_error ? "err" : ""}`, "data-kind": e.kind }, who(`${d.tool_name} ${d.is_error ? "error" : "output"}`), el("pre", {}, String(d.output)));
    case "error": return el("div", { class: "ev err", "data-kind": e.kind }, who("error"), `${d.code}: ${d.message}`);
    case "assistant_text_start": case "assistant_text_delta": return null;
    default: return el("div", { class: `ev ${e.kind === "warning" ? "err" : ""}`, "data-kind": e.kind }, who(e.kind),
      el("span", { class: "muted mono" }, Object.entries(d).filter(([k]) => k !== "delta").map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")));
  }
}

async function agentView(view, universe, worldId, session) {
  const base = `/api/world/${enc(universe)}/${enc(worldId)}`;
  const t = await api(`${base}/transcript?session=${enc(session)}&limit=400`);
  const list = el("div", { "data-testid": "transcript" });
  const streaming = el("div", { class: "streaming", "data-testid": "streaming" });
  const totals = el("div", { class: "card grid", "data-testid": "totals" });
  const status = el("span", { class: "live", "data-testid": "live-status" });
  const showTotals = (x, s) => totals.replaceChildren(...cells("status", el("span", { "data-testid": "session-status" }, s.status), "turns", s.turns,
    "model", `${s.provider} ${s.model}`, "LLM calls", x.llm_calls, "tokens", `${x.input_tokens} in, ${x.output_tokens} out`,
    "cost", x.cost_usd === null || x.cost_usd === undefined ? "unknown" : `$${x.cost_usd.toFixed(4)}`));
  const sums = { ...t.totals };
  showTotals(sums, t.session);
  const subagents = new Set();
  const add = (e) => {
    if (e.session !== session) subagents.add(e.session);
    const node = agentEvent(e, session);
    if (node) list.append(node);
    if (e.kind === "assistant_text_end") streaming.textContent = "";
  };
  t.events.forEach(add);
  const subs = el("div", { "data-testid": "subagents" });
  const showSubs = () => subs.replaceChildren(...(subagents.size ? ["subagents: ", ...[...subagents].map((s) => el("a", { href: `#/agent/${enc(universe)}/${enc(worldId)}/${enc(s)}`, class: "sub" }, s))] : []));
  showSubs();
  const controls = el("div", { class: "actions", "data-testid": "agent-actions" });
  if (can("agent")) {
    const text = el("input", { placeholder: "steer: a message injected before the next LLM call", size: 60, "data-testid": "steer-text" });
    controls.append(text,
      el("button", { class: "primary", "data-testid": "action-steer", onclick: async () => {
        if (!text.value.trim()) return;
        if (await act("Steer", `Inject "${text.value}" into session ${session} before its next LLM call.`, `${base}/agent/steer`, { session, text: text.value })) text.value = "";
      } }, "Steer"),
      el("button", { class: "danger", "data-testid": "action-abort",
        onclick: () => act("Abort session", `Abort session ${session}: it stops issuing effects, its running command is killed and the session ends.`, `${base}/agent/abort`, { session }) }, "Abort"));
  }
  view.append(el("h1", {}, `Agent session ${session} `, el("span", { class: "muted" }, `in ${worldId}`), " ", status),
    el("p", {}, el("a", { href: `#/world/${enc(universe)}/${enc(worldId)}?tab=agents` }, "← sessions of this world")),
    totals, subs, controls,
    ...(t.complete ? [] : [el("p", { class: "muted" }, "(earlier events are older than the part of the journal read here)")]),
    list, streaming);
  const source = live(`${base}/tail?from=${t.height}`, {
    record: (row) => {
      const r = row.record;
      if (row.kind !== "domain_event" || typeof r !== "object" || r.schema !== "agent/Event@1") return;
      const v = r.value;
      if (v.session !== session && !String(v.session).startsWith(session + "/")) return;
      add({ at: row.at, session: v.session, seq: v.seq, kind: v.kind, data: v.data || {} });
      showSubs();
      if (v.session === session && v.kind === "assistant_text_end") {
        const u = (v.data || {}).usage || {};
        sums.llm_calls += 1; sums.input_tokens += u.input_tokens || 0; sums.output_tokens += u.output_tokens || 0;
      }
      if (v.session === session) api(`${base}/sessions`).then(({ sessions }) => {
        const s = sessions.find((x) => x.session === session);
        if (s) showTotals(sums, s);
      }).catch(() => {});
    },
    frame: ({ frame }) => { if (frame && frame.type === "text_delta") streaming.textContent += frame.delta; },
    lost: () => { status.textContent = "● connection to the kernel lost"; },
  });
  source.onopen = () => { status.textContent = "● live"; };
}

// what pages in their own modules (jobs.js) use of this one
const UI = { el, api, act, can, live, every, cells, badge, enc, ago, pretty, toast };
const jobsModule = () => import("/static/jobs.js");

// --- the router -------------------------------------------------------------------------------------------

async function render() {
  for (const fn of cleanups) fn();
  cleanups = [];
  const { parts, query } = parseHash();
  const view = $view();
  view.replaceChildren();
  const name = parts[0] || (can("allUniverses") || SESSION.can.kind === "worlds" ? "universes" : "world");
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === name);
  try {
    if (name === "universes") await universesView(view);
    else if (name === "worlds") await worldsView(view, query);
    else if (name === "world" && parts.length >= 3) await worldView(view, parts[1], parts[2], query);
    else if (name === "world") location.hash = `#/world/${enc(SESSION.can.universe)}/${enc(SESSION.can.world)}`;
    else if (name === "agent") await agentView(view, parts[1], parts[2], parts.slice(3).join("/"));
    else if (name === "cluster") await clusterView(view);
    else if (name === "scheduling") await schedulingView(view);
    else if (name === "audit") await auditView(view, query);
    else if (name === "jobs") await (await jobsModule()).jobsView(view, UI);
    else if (name === "job") await (await jobsModule()).jobView(view, UI, parts[1], parts.slice(2).join("/"));
    else view.append(el("p", {}, "no such page"));
  } catch (err) {
    view.append(el("div", { class: "card row-problem", "data-testid": "error" }, err.message));
  }
}

async function main() {
  SESSION = await api("/api/session");
  const c = SESSION.can;
  document.getElementById("who").replaceChildren(
    c.readOnly ? el("span", { class: "badge ro", "data-testid": "read-only" }, "read-only") : "", " ",
    `${c.description} · ${SESSION.kernel}`);
  window.addEventListener("hashchange", render);
  await render();
}

main().catch((err) => { $view().replaceChildren(el("div", { class: "card row-problem" }, err.message)); });
