"""Job files: what parses, and the one-line errors for what does not."""

import subprocess

import pytest

from aos.agents.factory import JobSpecError, load_job


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    r.mkdir()
    subprocess.run(["git", "init", "-q", str(r)], check=True)
    return r


def job(tmp_path, text, name="j.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


GOOD = """
[job]
intent = "do it"
repository = "repo"
[budget]
tokens = 10
cost_usd = 0.5
[[scenario]]
name = "a"
run = "true"
[[scenario]]
name = "b"
run = "false"
expect_exit = 1
holdout = true
description = "b fails"
"""


def test_a_job_file_parses_into_typed_values(tmp_path, repo):
    spec = load_job(job(tmp_path, GOOD))
    assert spec.job_id == "j" and spec.repository == str(repo.resolve()) and spec.provider == "anthropic"
    assert spec.budget.tokens == 10 and spec.budget.cost_microusd == 500_000 and spec.budget.parallel_workers == 2
    assert [s.name for s in spec.scenarios] == ["a", "b"] and spec.scenarios[1].holdout
    assert spec.visible_scenarios == [spec.scenarios[0].to_value()]
    assert spec.scenarios[1].visible() == {"name": "b", "holdout": True, "description": "b fails"}
    assert "." not in str(spec.to_value()["budget"])  # no floats in world values


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('intent = "do it"', 'intent = " "'), "job.intent is empty"),
    (lambda t: t.replace('repository = "repo"', 'repository = "nowhere"'), "not a git repository"),
    (lambda t: t.replace("tokens = 10", "tokens = 0"), "budget.tokens must be a positive integer"),
    (lambda t: t.replace("tokens = 10", "tokns = 10"), "[budget]: unknown field 'tokns'"),
    (lambda t: t.replace('name = "b"', 'name = "a"'), "two scenarios are named 'a'"),
    (lambda t: t.replace("holdout = true", 'holdout = "yes"'), "scenario[1].holdout must be true or false"),
    (lambda t: t.split("[[scenario]]")[0], "at least one [[scenario]]"),
    (lambda t: t.replace('[job]', '[job]\nprovider = "acme"'), "job.provider 'acme'"),
    (lambda t: t + "\n[[[", "not valid TOML"),
])
def test_bad_job_files_say_what_is_wrong(tmp_path, repo, edit, message):
    with pytest.raises(JobSpecError) as err:
        load_job(job(tmp_path, edit(GOOD)))
    assert message in str(err.value)


def test_the_cli_reports_a_bad_job_in_one_line(tmp_path, repo):
    import sys

    path = job(tmp_path, GOOD.replace("tokens = 10", "tokens = -1"))
    done = subprocess.run([sys.executable, "-m", "aos.cli", "factory", "run", path], capture_output=True, text=True,
                          env={"AOS_FACTORY_DATA": str(tmp_path / "d"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "budget.tokens must be a positive integer" in done.stderr
