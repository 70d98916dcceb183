// The Jobs view and a job's page: the software factory's jobs, rebuilt from their worlds' journals by the
// console (console/jobs.py), live over server-sent events. `ui` is app.js's toolkit (el, api, act, ...).

const STATES = ["running", "waiting for approval", "done", "failed", "stopped by budget", "stopped"];

function style() {
  if (document.getElementById("jobs-css")) return;
  document.head.append(Object.assign(document.createElement("link"), { id: "jobs-css", rel: "stylesheet", href: "/static/jobs.css" }));
}

const cls = (state) => "job-" + String(state).replace(/ /g, "-");
const usd = (micro) => (micro === null || micro === undefined ? "–" : `$${(micro / 1e6).toFixed(4)}`);
const secs = (s) => (s === null || s === undefined ? "–" : s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} m ${Math.round(s % 60)} s`);

function stateBadge(ui, state) {
  return ui.el("span", { class: `badge job ${cls(state)}`, "data-testid": "job-state" }, state);
}

// "used / budget" for tokens, cost and wall time
function spending(ui, j) {
  const b = j.budget || {};
  const s = j.spent || {};
  const of = (used, limit, fmt) => (limit === undefined ? fmt(used) : `${fmt(used)} / ${fmt(limit)}`);
  return [
    of(s.tokens, b.tokens, (x) => (x === null || x === undefined ? "–" : String(x))) + (s.final ? "" : " so far"),
    of(s.cost_microusd, b.cost_microusd, usd),
    of(j.wall_s, b.wall_time_s, secs),
  ];
}

export async function jobsView(view, ui) {
  style();
  const { el, api } = ui;
  const body = el("tbody");
  const filter = el("select", { "data-testid": "job-filter" }, el("option", { value: "" }, "every state"),
    ...STATES.map((s) => el("option", { value: s }, s)));
  view.append(el("h1", {}, "Jobs ", el("span", { class: "muted" }, "of the software factory")),
    el("p", { class: "muted" }, "Each job is its planner, judge, governor and worker worlds; what is shown is read from their journals (as aos factory status reads them). ", filter),
    el("table", { "data-testid": "jobs" },
      el("thead", {}, el("tr", {}, ["job", "universe", "state", "tasks", "tokens", "cost", "wall time", "verdicts", "intent"].map((h) => el("th", {}, h)))),
      body));
  let rows = [];
  const show = () => {
    const picked = rows.filter((j) => !filter.value || j.state === filter.value);
    body.replaceChildren(...(picked.length ? picked.map((j) => {
      const [tokens, cost, wall] = spending(ui, j);
      return el("tr", { "data-job": j.job },
        el("td", {}, el("a", { href: `#/job/${ui.enc(j.universe)}/${ui.enc(j.job)}`, "data-testid": "job-link" }, j.job)),
        el("td", {}, j.universe), el("td", {}, stateBadge(ui, j.state)),
        el("td", { "data-testid": "job-tasks" }, j.tasks.length ? j.tasks.map((t) => el("span", { class: `task ${cls(t.state)}`, title: `${t.attempts} attempt(s)` }, `${t.id}: ${t.state}`)) : "none yet"),
        el("td", { class: "num" }, tokens), el("td", { class: "num" }, cost), el("td", { class: "num" }, wall),
        el("td", {}, `${j.verdicts.accepted} accepted, ${j.verdicts.rejected} rejected`),
        el("td", { class: "muted" }, j.intent));
    }) : [el("tr", {}, el("td", { colspan: 9, class: "muted", "data-testid": "no-jobs" }, "no factory jobs in the universes this token can see (aos factory run JOB --connect ADDR starts one)"))]));
  };
  filter.addEventListener("change", show);
  const refresh = async () => { rows = (await api("/api/jobs")).jobs; show(); };
  await refresh();
  ui.every(2000, () => refresh().catch(() => {}));
}

function verdictCard(ui, v) {
  const { el } = ui;
  const what = v.final ? "final check" : `${v.task} attempt ${v.attempt}`;
  return el("div", { class: `card verdict ${v.accepted ? "ok" : "bad"}`, "data-testid": "verdict" },
    el("h3", {}, `${what}: `, el("span", { "data-testid": "verdict-outcome" }, v.accepted ? "ACCEPTED" : "REJECTED"),
      el("span", { class: "muted" }, ` ${v.passed}/${v.total} scenarios pass` + (v.satisfaction === null || v.satisfaction === undefined ? "" : `, satisfaction ${v.satisfaction}%`))),
    v.reason ? el("p", { class: "muted" }, v.reason) : null,
    el("table", { "data-testid": "evidence" }, el("tbody", {}, v.evidence.map((x) => el("tr", { class: x.passed ? "" : "row-problem" },
      el("td", {}, x.passed ? "pass" : "FAIL"), el("td", {}, x.name + (x.holdout ? " (hold-out)" : "")),
      el("td", { class: "num" }, `exit ${x.exit_code}`), el("td", {}, el("pre", { class: "out" }, String(x.output || "").slice(-600))))))),
    !v.accepted && v.feedback ? el("pre", { class: "feedback" }, v.feedback.slice(0, 2000)) : null);
}

export async function jobView(view, ui, universe, job) {
  style();
  const { el, api, enc, cells } = ui;
  const base = `/api/job/${enc(universe)}/${enc(job)}`;
  const world = (w) => `#/world/${enc(universe)}/${enc(w)}`;
  const status = el("span", { class: "live", "data-testid": "live-status" });
  const head = el("div");
  const body = el("div");
  view.append(el("p", {}, el("a", { href: "#/jobs" }, "← jobs")), head, body);

  const draw = (j) => {
    const [tokens, cost, wall] = spending(ui, j);
    const actions = el("div", { class: "actions", "data-testid": "job-actions" });
    if (ui.can("send") && j.approval.waiting) {
      const note = el("input", { placeholder: "a note for the audit trail", size: 40, "data-testid": "decision-note" });
      actions.append(note,
        el("button", { class: "primary", "data-testid": "action-approve", onclick: () => ui.act("Approve job",
          `Approve job ${job}'s change (${(j.approval.requested.slice(-1)[0] || []).join(", ")}); the planner then ends it done.`,
          `/api/world/${enc(universe)}/${enc(j.roles.governor)}/factory/decide`, { decision: "approve", note: note.value }) }, "Approve"),
        el("button", { class: "danger", "data-testid": "action-reject", onclick: () => ui.act("Reject job",
          `Reject job ${job}'s change: the job ends failed.`,
          `/api/world/${enc(universe)}/${enc(j.roles.governor)}/factory/decide`, { decision: "reject", note: note.value }) }, "Reject"));
    }
    if (ui.can("send") && (j.state === "running" || j.state === "waiting for approval")) {
      actions.append(el("button", { class: "danger", "data-testid": "action-stop", onclick: () => ui.act("Stop job",
        `Stop job ${job}: the planner aborts its running workers and ends the job stopped.`,
        `/api/world/${enc(universe)}/${enc(j.roles.planner)}/factory/stop`, { reason: "stopped from the console" }) }, "Stop"));
    }
    head.replaceChildren(
      el("h1", {}, `Job ${job} `, stateBadge(ui, j.state), " ", status),
      el("div", { class: "card grid", "data-testid": "job-summary" }, ...cells(
        "intent", j.intent || "–", "reason", el("span", { "data-testid": "job-reason" }, j.reason || "–"),
        "tokens", tokens, "cost", cost, "wall time", el("span", { "data-testid": "job-wall" }, wall),
        "budget", j.budget ? `${j.budget.parallel_workers} parallel worker(s), ${j.budget.max_attempts} attempt(s) per task` : "–",
        "worlds", el("span", {}, ...j.worlds.map((w) => el("a", { href: world(w.id), class: "sub", title: `${w.state}${w.host ? " on " + w.host : ""}` }, w.id))),
        "audit trail", `${j.events} event(s)`)),
      actions);
    const tasks = el("table", { "data-testid": "job-task-list" },
      el("thead", {}, el("tr", {}, ["task", "state", "attempts", "worker", "changes", "verdicts"].map((h) => el("th", {}, h)))),
      el("tbody", {}, j.tasks.map((t) => el("tr", { "data-task": t.id },
        el("td", {}, el("b", {}, t.id), " ", t.title, el("div", { class: "muted" }, t.description)),
        el("td", {}, el("span", { class: `task ${cls(t.state)}`, "data-testid": "task-state" }, t.state)),
        el("td", { class: "num" }, t.attempts),
        el("td", {}, t.worker ? el("a", { href: world(t.worker) }, t.worker) : "–"),
        el("td", {}, t.changes.map((c) => el("div", {}, `#${c.attempt} `, el("span", { class: "mono", title: c.ref }, c.ref.slice(0, 16) + "…"), ` ${c.bytes} B, ${c.tokens} tokens, `,
          el("a", { href: `#/agent/${enc(universe)}/${enc(c.transcript.world)}/${enc(c.transcript.session)}`, "data-testid": "transcript-link" }, "transcript")))),
        el("td", {}, t.verdicts.map((v) => el("div", {}, `#${v.attempt} ${v.accepted ? "accepted" : "rejected"} (${v.passed}/${v.total})`)))))));
    const workers = el("table", { "data-testid": "job-workers" },
      el("thead", {}, el("tr", {}, ["worker world", "tasks", "agent sessions"].map((h) => el("th", {}, h)))),
      el("tbody", {}, j.workers.map((w) => el("tr", {},
        el("td", {}, el("a", { href: world(w.world), "data-testid": "worker-link" }, w.world)),
        el("td", {}, w.tasks.map((t) => `${t.task} #${t.attempt}`).join(", ") || "–"),
        el("td", {}, w.sessions.map((s) => el("a", { href: `#/agent/${enc(universe)}/${enc(w.world)}/${enc(s)}`, class: "sub", "data-testid": "session-link" }, s)))))));
    const stops = j.stops.length ? el("ul", { "data-testid": "job-stops" }, j.stops.map((s) => el("li", { class: "row-problem" },
      s.kind === "budget_exceeded" ? `governor: STOP, budget exceeded: ${s.reason}`
        : s.kind === "aborted" ? `${s.task} attempt ${s.attempt} aborted in ${s.world}: ${s.reason}`
          : s.kind === "trap" ? `TRAP in ${s.world} (${s.workflow}): ${s.code}: ${s.message}`
            : `governor refused a decision from ${s.by || "someone"}: ${s.reason}`)))
      : el("p", { class: "muted", "data-testid": "job-stops" }, "the governor stopped nothing");
    const decisions = j.approval.decisions.map((d) => el("li", {}, `${d.approved ? "APPROVED" : "REJECTED"} by ${d.by}${d.note ? ": " + d.note : ""}`));
    body.replaceChildren(
      el("h2", {}, "Tasks"), tasks,
      el("h2", {}, "Workers"), workers,
      el("h2", {}, "Judge verdicts"), ...(j.verdicts.length ? j.verdicts.map((v) => verdictCard(ui, v)) : [el("p", { class: "muted" }, "no verdict yet")]),
      el("h2", {}, "Governor"), stops,
      ...(decisions.length ? [el("ul", { "data-testid": "job-decisions" }, decisions)] : []),
      el("h2", {}, "Audit trail ", el("span", { class: "muted" }, "(aos factory explain)")),
      el("pre", { class: "trail", "data-testid": "job-trail" }, j.explain.join("\n")));
  };
  // a running job's wall time goes on between two reports: count it on from the last one
  let last = null, at = 0;
  const redraw = (j) => { last = j; at = Date.now(); draw(j); };
  ui.every(1000, () => {
    if (!last || last.wall_s === null || last.ended_ns) return;
    const node = head.querySelector("[data-testid=job-wall]");
    if (node) node.textContent = spending(ui, { ...last, wall_s: last.wall_s + (Date.now() - at) / 1000 })[2];
  });
  redraw(await api(base));
  const source = ui.live(`${base}/live`, {
    job: (j) => { redraw(j); status.textContent = "● live"; },
    lost: () => { status.textContent = "● connection to the kernel lost"; },
  });
  source.onopen = () => { status.textContent = "● live"; };
}
