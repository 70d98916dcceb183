"""A factory job, as data: what is wanted (intent, constraints), where (the
repository), what it may spend (budget) and how to tell it is good
(scenarios, some of them hold-outs the workers never see).

A job is a TOML (or JSON) file::

    [job]
    intent = "Add mul() and sub() to calc.py"
    constraints = ["standard library only"]
    repository = "."            # relative to this file
    provider = "anthropic"      # optional; model = "..." too

    [budget]
    tokens = 200000             # all LLM tokens of the job (planner, workers, judge)
    cost_usd = 2.0
    wall_time_s = 900
    parallel_workers = 2
    max_attempts = 3            # per task, before the job fails

    [policy]
    approve = true              # a person approves the final change (aos factory approve JOB)
    worker_labels = {gpu = "no"}   # on a cluster: only hosts with these labels run workers

    [[scenario]]
    name = "mul works"
    run = "python3 -B -c 'from calc import mul; assert mul(2, 3) == 6'"
    expect_exit = 0             # default 0
    expect_stdout = ""          # a substring stdout must hold (optional)
    holdout = true              # only the judge sees it
    description = "mul multiplies"   # what feedback may say about a hold-out

    [[scenario]]                # a browser scenario: the judge serves the result and checks it in Chromium
    kind = "browser"
    name = "greets by name"
    serve = "python3 -B app.py {port}"   # started in the judge's clone; {port} is the port the judge picked
    path = "/"                  # where the browser opens (or url = "http://127.0.0.1:8000/" instead of serve)
    steps = [{fill = {Name = "Ada"}}, {click = "Greet"}, {expect = {text = "Hello, Ada!"}}]
    holdout = true

A browser scenario's steps are ``aos.agents.web_judge``'s: ``navigate``,
``fill`` (label -> text, or true/false for a checkbox), ``type``, ``click``,
``expect`` (``url``, ``path``, ``title``, ``text``, ``no_text``,
``no_console_errors``).

``load_job(path)`` returns a ``JobSpec`` or raises ``JobSpecError`` naming
the field that is wrong. Nothing here touches the kernel.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field
from typing import Any

from aos.errors import InvalidArgument

PROVIDERS = ("anthropic", "openai", "gemini")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}")


class JobSpecError(InvalidArgument):
    """A job file that cannot be run as written; the message names the field."""

    code = "JobSpec"


@dataclass(frozen=True)
class Budget:
    tokens: int = 1_000_000
    cost_usd: float = 10.0
    wall_time_s: int = 3600
    parallel_workers: int = 2
    max_attempts: int = 3

    @property
    def cost_microusd(self) -> int:
        """World values carry no floats: the cost budget in millionths of a dollar."""
        return int(round(self.cost_usd * 1_000_000))


@dataclass(frozen=True)
class Policy:
    approve: bool = False
    worker_labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    run: str  # a shell scenario's command; a browser scenario's summary (what a worker or the planner reads)
    expect_exit: int = 0
    expect_stdout: str = ""
    holdout: bool = False
    description: str = ""
    timeout_s: int = 60
    kind: str = "shell"  # or "browser"
    serve: str = ""  # browser: the command that serves the result on {port}, run in the judge's clone
    url: str = ""  # browser: or an absolute url to check instead
    path: str = "/"  # browser: where the browser opens on the served app
    steps: tuple[dict[str, Any], ...] = ()  # browser: web_judge steps

    def to_value(self) -> dict[str, Any]:
        v = asdict(self)
        v["steps"] = [dict(x) for x in self.steps]
        return v

    def visible(self) -> dict[str, Any]:
        """What a worker or the planner may see: a hold-out shows neither its command nor its expectation."""
        if self.holdout:
            return {"name": self.name, "holdout": True, "description": self.description}
        return self.to_value()


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    intent: str
    repository: str
    constraints: tuple[str, ...] = ()
    provider: str = "anthropic"
    model: str = ""
    budget: Budget = field(default_factory=Budget)
    scenarios: tuple[Scenario, ...] = ()
    source: str = ""  # the file it came from
    policy: Policy = field(default_factory=Policy)

    @property
    def visible_scenarios(self) -> list[dict[str, Any]]:
        return [s.to_value() for s in self.scenarios if not s.holdout]

    def to_value(self) -> dict[str, Any]:
        """The whole job as a world value (floats turned into integers)."""
        b = self.budget
        return {
            "job": self.job_id, "intent": self.intent, "repository": self.repository,
            "constraints": list(self.constraints), "provider": self.provider, "model": self.model,
            "budget": {"tokens": b.tokens, "cost_microusd": b.cost_microusd, "wall_time_s": b.wall_time_s,
                       "parallel_workers": b.parallel_workers, "max_attempts": b.max_attempts},
            "scenarios": [s.to_value() for s in self.scenarios],
            "policy": {"approve": self.policy.approve, "worker_labels": dict(self.policy.worker_labels)},
        }


def load_job(path: str, job_id: str | None = None) -> JobSpec:
    """Read and check a job file (``.toml`` or ``.json``)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise JobSpecError(f"{path}: cannot read the job file: {exc.strerror or exc}") from None
    try:
        doc = json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise JobSpecError(f"{path}: not valid {'JSON' if path.endswith('.json') else 'TOML'}: {exc}") from None
    base = os.path.dirname(os.path.abspath(path))
    default_id = re.sub(r"[^A-Za-z0-9_-]", "-", os.path.splitext(os.path.basename(path))[0])[:48] or "job"
    return parse_job(doc, base, job_id or default_id, source=os.path.abspath(path))


def parse_job(doc: Any, base_dir: str, job_id: str, source: str = "") -> JobSpec:
    if not isinstance(doc, dict):
        raise JobSpecError("the job file must be a table with [job], [budget] and [[scenario]]")
    _keys(doc, "", {"job", "budget", "policy", "scenario"}, {"job"})
    job = doc["job"]
    _keys(job, "job", {"intent", "constraints", "repository", "provider", "model", "id"}, {"intent", "repository"})
    job_id = _text(job.get("id", job_id), "job.id")
    if not _ID.fullmatch(job_id):
        raise JobSpecError(f"job.id {job_id!r}: use 1-48 characters from [A-Za-z0-9_-], "
                           "starting with a letter or digit")
    intent = _text(job["intent"], "job.intent").strip()
    if not intent:
        raise JobSpecError("job.intent is empty: say what the job should achieve")
    constraints = job.get("constraints", [])
    if not isinstance(constraints, list) or not all(isinstance(c, str) for c in constraints):
        raise JobSpecError("job.constraints must be a list of strings")
    repo = os.path.realpath(os.path.join(base_dir, _text(job["repository"], "job.repository")))
    if not os.path.isdir(os.path.join(repo, ".git")):
        raise JobSpecError(f"job.repository {repo}: not a git repository (no .git); the factory clones it per worker")
    provider = _text(job.get("provider", "anthropic"), "job.provider")
    if provider not in PROVIDERS:
        raise JobSpecError(f"job.provider {provider!r}: one of {', '.join(PROVIDERS)}")
    budget = _budget(doc.get("budget", {}))
    raw_scenarios = doc.get("scenario")
    if not isinstance(raw_scenarios, list) or not raw_scenarios:
        raise JobSpecError("the job needs at least one [[scenario]]: how else would anyone know it is done?")
    scenarios = tuple(_scenario(s, i) for i, s in enumerate(raw_scenarios))
    names = [s.name for s in scenarios]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise JobSpecError(f"two scenarios are named {dup!r}; names identify them in feedback")
    return JobSpec(job_id, intent, repo, tuple(constraints), provider, _text(job.get("model", ""), "job.model"),
                   budget, scenarios, source, _policy(doc.get("policy", {})))


def _policy(p: Any) -> Policy:
    _keys(p, "policy", {"approve", "worker_labels"}, set())
    approve = p.get("approve", False)
    if not isinstance(approve, bool):
        raise JobSpecError("policy.approve must be true or false")
    labels = p.get("worker_labels", {})
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise JobSpecError("policy.worker_labels must be a table of strings, e.g. {zone = \"a\"}")
    return Policy(approve, tuple(sorted(labels.items())))


def _budget(b: Any) -> Budget:
    if not isinstance(b, dict):
        raise JobSpecError("[budget] must be a table")
    _keys(b, "budget", {"tokens", "cost_usd", "wall_time_s", "parallel_workers", "max_attempts"}, set())
    d = Budget()
    out = {}
    for name in ("tokens", "wall_time_s", "parallel_workers", "max_attempts"):
        v = b.get(name, getattr(d, name))
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise JobSpecError(f"budget.{name} must be a positive integer, not {v!r}")
        out[name] = v
    cost = b.get("cost_usd", d.cost_usd)
    if not isinstance(cost, (int, float)) or isinstance(cost, bool) or cost <= 0:
        raise JobSpecError(f"budget.cost_usd must be a positive number, not {cost!r}")
    if out["parallel_workers"] > 16:
        raise JobSpecError("budget.parallel_workers is at most 16")
    return Budget(out["tokens"], float(cost), out["wall_time_s"], out["parallel_workers"], out["max_attempts"])


def _scenario(s: Any, i: int) -> Scenario:
    where = f"scenario[{i}]"
    if not isinstance(s, dict):
        raise JobSpecError(f"{where} must be a table")
    kind = s.get("kind", "shell")
    if kind not in ("shell", "browser"):
        raise JobSpecError(f"{where}.kind {kind!r}: \"shell\" (the default) or \"browser\"")
    if kind == "browser":
        return _browser_scenario(s, where)
    _keys(s, where, {"kind", "name", "run", "expect_exit", "expect_stdout", "holdout", "description", "timeout_s"},
          {"name", "run"})
    name = _text(s["name"], f"{where}.name").strip()
    run = _text(s["run"], f"{where}.run").strip()
    if not name or not run:
        raise JobSpecError(f"{where}: name and run must not be empty")
    exit_code = s.get("expect_exit", 0)
    timeout = s.get("timeout_s", 60)
    for n, v in (("expect_exit", exit_code), ("timeout_s", timeout)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise JobSpecError(f"{where}.{n} must be a non-negative integer, not {v!r}")
    holdout = s.get("holdout", False)
    if not isinstance(holdout, bool):
        raise JobSpecError(f"{where}.holdout must be true or false")
    return Scenario(name, run, exit_code, _text(s.get("expect_stdout", ""), f"{where}.expect_stdout"), holdout,
                    _text(s.get("description", ""), f"{where}.description"), timeout)


_STEP_KINDS = ("navigate", "fill", "type", "click", "expect")
_EXPECT_KEYS = {"url", "path", "title", "text", "no_text", "no_console_errors"}


def _browser_scenario(s: dict[str, Any], where: str) -> Scenario:
    """A browser scenario, checked here so a bad step fails the job file, not the judge mid-job."""
    _keys(s, where, {"kind", "name", "serve", "url", "path", "steps", "holdout", "description", "timeout_s"},
          {"name", "steps"})
    name = _text(s["name"], f"{where}.name").strip()
    if not name:
        raise JobSpecError(f"{where}.name must not be empty")
    serve = _text(s.get("serve", ""), f"{where}.serve").strip()
    url = _text(s.get("url", ""), f"{where}.url").strip()
    if bool(serve) == bool(url):
        raise JobSpecError(f"{where}: a browser scenario has either serve (a command serving the result on "
                           "{port}) or url (an absolute http(s) url), not both and not neither")
    if serve and "{port}" not in serve:
        raise JobSpecError(f"{where}.serve must say where {{port}} goes: the judge picks the port")
    if url:
        from aos.adapters.browser_origins import OriginError, parse_origin

        parts = url.split("/", 3)
        try:
            parse_origin("/".join(parts[:3]))
        except OriginError as exc:
            raise JobSpecError(f"{where}.url {url!r}: not an absolute http(s) url ({exc})") from None
    path = _text(s.get("path", "/"), f"{where}.path")
    if not path.startswith("/"):
        raise JobSpecError(f"{where}.path {path!r} must start with /")
    if url and "path" in s:
        raise JobSpecError(f"{where}.path goes with serve; with url, put the path in the url")
    timeout = s.get("timeout_s", 60)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
        raise JobSpecError(f"{where}.timeout_s must be a positive integer, not {timeout!r}")
    holdout = s.get("holdout", False)
    if not isinstance(holdout, bool):
        raise JobSpecError(f"{where}.holdout must be true or false")
    raw = s["steps"]
    if not isinstance(raw, list) or not raw:
        raise JobSpecError(f"{where}.steps must be a non-empty list of steps ({', '.join(_STEP_KINDS)})")
    steps = tuple(_browser_step(x, f"{where}.steps[{j}]") for j, x in enumerate(raw))
    if not any("expect" in x for x in steps):
        raise JobSpecError(f"{where}.steps: no expect step, so nothing would be checked")
    opened = f"`{serve}` then {path}" if serve else url
    run = f"(browser) open {opened}, {len(steps)} step(s): " + ", ".join(next(iter(x)) for x in steps)
    return Scenario(name, run, 0, "", holdout, _text(s.get("description", ""), f"{where}.description"), timeout,
                    "browser", serve, url, path, steps)


def _browser_step(x: Any, where: str) -> dict[str, Any]:
    if not isinstance(x, dict) or len(x) != 1 or next(iter(x)) not in _STEP_KINDS:
        raise JobSpecError(f"{where}: a step is a table with one of {', '.join(_STEP_KINDS)}, not {x!r}")
    (kind, arg), = x.items()
    here = f"{where}.{kind}"
    if kind == "navigate":
        _text(arg, here)
    elif kind == "fill":
        if not isinstance(arg, dict) or not arg or not all(isinstance(v, (str, bool)) for v in arg.values()):
            raise JobSpecError(f"{here} is a table label = text (or true/false for a checkbox)")
    elif kind == "type":
        if not isinstance(arg, dict) or not isinstance(arg.get("label"), str) or not isinstance(arg.get("text"), str) \
                or set(arg) - {"label", "text", "submit"} or not isinstance(arg.get("submit", False), bool):
            raise JobSpecError(f"{here} is {{label = ..., text = ..., submit = true|false}}")
    elif kind == "click":
        ok = isinstance(arg, str) or (isinstance(arg, dict) and arg and set(arg) <= {"role", "name", "label"}
                                       and all(isinstance(v, str) for v in arg.values()) and set(arg) != {"name"})
        if not ok:
            raise JobSpecError(f"{here} names a button (\"Sign in\") or {{role, name}} / {{label}}, not {arg!r}")
    else:
        if not isinstance(arg, dict) or not arg:
            raise JobSpecError(f"{here} is a table of {', '.join(sorted(_EXPECT_KEYS))}")
        unknown = sorted(set(arg) - _EXPECT_KEYS)
        if unknown:
            raise JobSpecError(f"{here}: unknown expectation {unknown[0]!r} (known: {', '.join(sorted(_EXPECT_KEYS))})")
        for k, v in arg.items():
            good = isinstance(v, bool) if k == "no_console_errors" else \
                isinstance(v, str) or (k in ("text", "no_text") and isinstance(v, list)
                                       and all(isinstance(t, str) for t in v))
            if not good:
                raise JobSpecError(f"{here}.{k}: {'true or false' if k == 'no_console_errors' else 'text'}, "
                                   f"not {v!r}")
    return {kind: arg}


def _keys(d: Any, where: str, allowed: set[str], required: set[str]) -> None:
    label = f"[{where}]" if where else "the job file"
    if not isinstance(d, dict):
        raise JobSpecError(f"{label} must be a table")
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise JobSpecError(f"{label}: unknown field {unknown[0]!r} (known: {', '.join(sorted(allowed))})")
    missing = sorted(required - set(d))
    if missing:
        raise JobSpecError(f"{label}: missing {missing[0]!r}")


def _text(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise JobSpecError(f"{where} must be a string, not {type(v).__name__}")
    return v
