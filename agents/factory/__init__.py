"""The software factory: planner, worker, judge, governor and memory worlds take a job to done.

``load_job`` reads a job file (``spec``); ``run_job`` (``runner``) makes the job's worlds on a
kernel and follows them until the planner says the job ended; ``explain`` rebuilds what
happened from the worlds' journals alone. ``docs/factory.md`` says how it fits together.
"""

from aos.agents.factory.spec import Budget, JobSpec, JobSpecError, Policy, Scenario, load_job, parse_job

__all__ = ["Budget", "JobSpec", "JobSpecError", "Policy", "Scenario", "load_job", "parse_job"]
