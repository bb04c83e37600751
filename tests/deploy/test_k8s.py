"""deploy/k8s: every manifest passes the Kubernetes schema, and every name it refers to exists."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.app import create_app
from tests.deploy.manifests import DEPLOY, known_env, parse_genrec

K8S = DEPLOY / "k8s"
VERSION = "1.33.0"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
ALL = [d for p in MANIFESTS for d in documents(p)]
BY_KIND: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
for doc in ALL:
    BY_KIND[doc["kind"]][doc["metadata"]["name"]] = doc


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def pod_labels(doc: dict[str, Any]) -> dict[str, str]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    return doc["spec"]["template"]["metadata"]["labels"]


WORKLOADS = [d for d in ALL if d["kind"] in {"Deployment", "StatefulSet", "Job", "CronJob"}]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(doc)
    return spec.get("initContainers", []) + spec["containers"]


def test_kustomization_lists_every_manifest_but_the_one_offs():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert all((K8S / r).is_file() for r in listed)
    assert listed == {p.name for p in MANIFESTS} - {"secret.example.yaml", "train-job.yaml"}


@pytest.mark.parametrize("doc", ALL, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_valid_against_the_kubernetes_schema(doc):
    kubernetes_validate.validate(doc, VERSION, strict=True)


def test_the_deliverables_are_there():
    assert {"genrec-api"} <= set(BY_KIND["Deployment"]) and "genrec-api" in BY_KIND["Service"]
    assert "genrec-api" in BY_KIND["HorizontalPodAutoscaler"]
    redis = BY_KIND["StatefulSet"]["genrec-redis"]
    assert redis["spec"]["volumeClaimTemplates"]
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert "genrec-bundles" in BY_KIND["PersistentVolumeClaim"]
    assert "genrec-retrain" in BY_KIND["CronJob"] and "genrec-api-key" in BY_KIND["Secret"]


def test_api_probes_hit_real_routes_on_a_named_port():
    api = BY_KIND["Deployment"]["genrec-api"]["spec"]["template"]["spec"]["containers"][0]
    paths = set(create_app().openapi()["paths"])
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz" in paths
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz" in paths
    port_names = {p["name"] for p in api["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert api[probe]["httpGet"]["port"] in port_names
    assert {"cpu", "memory"} <= set(api["resources"]["requests"])
    assert {"cpu", "memory"} <= set(api["resources"]["limits"])


@pytest.mark.parametrize("doc", WORKLOADS, ids=lambda d: d["metadata"]["name"])
def test_workload_references_resolve(doc):
    spec = pod_spec(doc)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    templates = {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates", [])}
    for v in volumes.values():
        if "persistentVolumeClaim" in v:
            assert v["persistentVolumeClaim"]["claimName"] in BY_KIND["PersistentVolumeClaim"]
    for c in containers(doc):
        for m in c.get("volumeMounts", []):
            assert m["name"] in volumes or m["name"] in templates, m
        for src in c.get("envFrom", []):
            assert src["configMapRef"]["name"] in BY_KIND["ConfigMap"]
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                secret = BY_KIND["Secret"][ref["name"]]
                assert ref["key"] in {**secret.get("data", {}), **secret.get("stringData", {})}
    if "selector" in doc["spec"]:
        assert doc["spec"]["selector"]["matchLabels"].items() <= pod_labels(doc).items()
    if doc["kind"] == "StatefulSet":
        assert BY_KIND["Service"][doc["spec"]["serviceName"]]["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize("doc", WORKLOADS, ids=lambda d: d["metadata"]["name"])
def test_pods_run_as_non_root_without_privilege_escalation(doc):
    assert pod_spec(doc)["securityContext"]["runAsNonRoot"] is True
    for c in containers(doc):
        assert c["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("doc", WORKLOADS, ids=lambda d: d["metadata"]["name"])
def test_genrec_commands_parse_with_the_real_cli_and_env(doc):
    env = {
        k: v
        for cm in BY_KIND["ConfigMap"].values()
        for k, v in cm["data"].items()
        if any(
            s.get("configMapRef", {}).get("name") == cm["metadata"]["name"]
            for c in containers(doc)
            for s in c.get("envFrom", [])
        )
    }
    for c in pod_spec(doc)["containers"]:
        if not c["image"].startswith("genrec"):
            continue  # e.g. redis: its own variables
        names = set(env) | {e["name"] for e in c.get("env", [])}
        assert names <= known_env(), names - known_env()
        if c.get("command", [""])[0] == "genrec":
            parse_genrec(c["command"], env)


def test_services_select_pods_and_target_their_named_ports():
    for svc in BY_KIND["Service"].values():
        selector = svc["spec"]["selector"]
        matches = [w for w in WORKLOADS if selector.items() <= pod_labels(w).items()]
        assert matches, svc["metadata"]["name"]
        ports = {p["name"] for w in matches for c in pod_spec(w)["containers"] for p in c["ports"]}
        assert all(p["targetPort"] in ports for p in svc["spec"]["ports"])


def test_hpa_scales_the_api_deployment_on_requested_cpu():
    hpa = BY_KIND["HorizontalPodAutoscaler"]["genrec-api"]["spec"]
    target = BY_KIND[hpa["scaleTargetRef"]["kind"]][hpa["scaleTargetRef"]["name"]]
    assert all("cpu" in c["resources"]["requests"] for c in pod_spec(target)["containers"])
    assert hpa["minReplicas"] <= target["spec"]["replicas"] <= hpa["maxReplicas"]


def test_redis_url_names_the_redis_service_and_port():
    url = BY_KIND["ConfigMap"]["genrec-config"]["data"]["GENREC_REDIS_URL"]
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    assert int(port) in {p["port"] for p in BY_KIND["Service"][host]["spec"]["ports"]}


def test_retrain_cronjob_never_overlaps_and_does_not_retry_a_gate_rejection():
    from pipeline.retrain import REJECTED_EXIT_CODE

    cron = BY_KIND["CronJob"]["genrec-retrain"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    rule = cron["jobTemplate"]["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [REJECTED_EXIT_CODE]


def secret_env(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """name → (Secret, key) of every variable a container takes from a Secret."""
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def api_container() -> dict[str, Any]:
    return BY_KIND["Deployment"]["genrec-api"]["spec"]["template"]["spec"]["containers"][0]


def test_the_api_takes_both_keys_and_the_redis_password_from_secrets():
    env = secret_env(api_container())
    assert {"GENREC_API_KEY", "GENREC_READ_API_KEY", "GENREC_REDIS_PASSWORD"} <= set(env)
    assert env["GENREC_API_KEY"] != env["GENREC_READ_API_KEY"]
    retrain = BY_KIND["CronJob"]["genrec-retrain"]
    assert (
        secret_env(pod_spec(retrain)["containers"][0])["GENREC_REDIS_PASSWORD"]
        == (env["GENREC_REDIS_PASSWORD"])
    )
    for cm in BY_KIND["ConfigMap"].values():  # no secret in plain config
        assert not {"GENREC_API_KEY", "GENREC_READ_API_KEY", "GENREC_REDIS_PASSWORD"} & set(
            cm["data"]
        )
        assert "@" not in cm["data"].get("GENREC_REDIS_URL", "")


def test_redis_needs_the_password_and_never_evicts():
    redis = BY_KIND["StatefulSet"]["genrec-redis"]["spec"]["template"]["spec"]["containers"][0]
    args = redis["args"]
    password_var = args[args.index("--requirepass") + 1]
    assert password_var.startswith("$(") and password_var.endswith(")")
    ref = secret_env(redis)[password_var[2:-1]]
    assert ref == secret_env(api_container())["GENREC_REDIS_PASSWORD"]
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--appendfsync") + 1] == "always"
    probe = " ".join(redis["readinessProbe"]["exec"]["command"])
    assert "REDISCLI_AUTH" in probe  # an unauthenticated PING would fail
    policy = BY_KIND["NetworkPolicy"]["genrec-redis"]["spec"]
    assert (
        policy["podSelector"]["matchLabels"].items()
        <= pod_labels(BY_KIND["StatefulSet"]["genrec-redis"]).items()
    )
    allowed = [
        p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for p in policy["ingress"][0]["from"]
    ]
    assert sorted(allowed) == ["api", "retrain"]


def test_the_api_drains_before_it_stops():
    """preStop pause, then SIGTERM starts genrec's drain; the grace period covers both and
    the requests in flight (the latency SLO), else the kubelet kills them mid-request."""
    from service.settings import Settings

    spec = BY_KIND["Deployment"]["genrec-api"]["spec"]["template"]["spec"]
    pause = api_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep" and float(pause[1]) > 0
    s = Settings()
    slo_s = s.latency_slo_ms / 1000
    assert spec["terminationGracePeriodSeconds"] > float(pause[1]) + s.drain_s + slo_s
