"""The Kubernetes manifests in deploy/k8s/ are valid against the Kubernetes schemas
(offline: kubernetes-validate ships them), and they run our daemons the way the
daemons expect: every argument parses, the probes hit the health port each daemon
is told to serve, and a host's grace period covers its drain.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

DEPLOY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "k8s")
VERSION = "1.30"


def documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "*.yaml"))):
        with open(path) as f:
            docs += [(os.path.basename(path), d) for d in yaml.safe_load_all(f) if d]
    return docs


def containers(kind: str, name: str) -> list[dict[str, Any]]:
    for _, doc in documents():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]
    raise AssertionError(f"no {kind} {name}")


def test_every_manifest_is_valid_kubernetes() -> None:
    """Each document validates strictly (no unknown fields) against the Kubernetes schemas."""
    docs = documents()
    assert {d["kind"] for _, d in docs} >= {"Deployment", "StatefulSet", "Service", "ConfigMap", "Namespace"}
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc.message}") from None


def test_a_broken_manifest_is_caught() -> None:
    """The validator is not a rubber stamp: a misspelled field fails."""
    _, doc = next((n, d) for n, d in documents() if d["kind"] == "StatefulSet")
    broken = {**doc, "spec": {**doc["spec"], "replicaz": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)


def expand(args: list[str]) -> list[str]:
    """Kubernetes' $(VAR) expansion with sample values."""
    sample = {"AOS_ETCD": "http://etcd:2379/aos", "AOS_STORAGE": "s3://bucket/prefix", "POD_NAME": "aos-hosts-0",
              "AOS_LOG_LEVEL": "info"}
    return [re.sub(r"\$\((\w+)\)", lambda m: sample[m.group(1)], a) for a in args]


def test_the_daemons_accept_their_arguments_and_probes_hit_their_health_ports() -> None:
    """aos-scheduler and aos-kernel parse the manifests' arguments, and every probe targets the --health port."""
    from aos.kernel.daemon import build_parser as kernel_parser
    from aos.kernel.scheduler.daemon import build_parser as scheduler_parser

    for (kind, name), parser in ((("Deployment", "aos-scheduler"), scheduler_parser()),
                                 (("StatefulSet", "aos-hosts"), kernel_parser())):
        for container in containers(kind, name):
            args = parser.parse_args(expand(container["args"]))
            health_port = int(args.health.rpartition(":")[2])
            for probe in ("readinessProbe", "livenessProbe"):
                assert container[probe]["grpc"]["port"] == health_port, (name, probe)
            assert "preStop" in container["lifecycle"]
            assert container["resources"]["requests"] and container["resources"]["limits"]


def test_a_host_may_finish_its_drain_before_it_is_killed() -> None:
    """terminationGracePeriodSeconds covers the preStop pause plus --drain-on-stop."""
    from aos.kernel.daemon import build_parser

    for _, doc in documents():
        if doc["kind"] != "StatefulSet":
            continue
        pod = doc["spec"]["template"]["spec"]
        for container in pod["containers"]:
            args = build_parser().parse_args(expand(container["args"]))
            pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
            assert args.drain_on_stop > 0 and args.storage and args.scheduler
            assert pod["terminationGracePeriodSeconds"] > pause + args.drain_on_stop
