#!/usr/bin/env python3
"""Offline checks of deploy/ that no off-the-shelf tool does. Run by check.sh.

    python3 deploy/checks.py k8s              # schema-validate manifests, plus cross-file rules
    python3 deploy/checks.py metrics          # metric names used exist in metric_names.rs
    python3 deploy/checks.py alerts           # runbooks, severities, a firing and a quiet test per alert
    python3 deploy/checks.py dashboard [OUT]  # panels; with OUT, its queries as rules for promtool

Prints one line per thing checked ("ok", "FAIL" or "SKIP" with the reason) and
exits 1 if anything failed. Needs PyYAML and kubernetes-validate, whose
Kubernetes schemas are bundled in the package: nothing is downloaded.
"""

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "lucent.json"
METRIC_NAMES = ROOT / "common" / "src" / "process" / "metric_names.rs"

# Kubernetes minors the manifests must be valid for: an old one still in vendor
# support (catches fields too new for it) and the newest kubernetes-validate bundles.
K8S_VERSIONS = ["1.29", "1.37"]

# Custom resources. kubernetes-validate carries schemas for built-in kinds only,
# and no PyPI or Debian package carries these operators' CRD schemas, so they are
# not schema-checked; the cross-file rules below still read and check them.
CRD_KINDS = {
    "ServiceMonitor": "Prometheus Operator CRD (monitoring.coreos.com/v1)",
    "PodMonitor": "Prometheus Operator CRD (monitoring.coreos.com/v1)",
    "KafkaTopic": "Strimzi CRD (kafka.strimzi.io/v1beta2)",
    "ScyllaCluster": "Scylla Operator CRD (scylla.scylladb.com/v1)",
}

# A Kubernetes resource.Quantity (500m, 1Gi, "2"). The schemas accept any
# string here, so a typo such as "1GB" would otherwise surface only at apply time.
QUANTITY = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")

failed = 0


class Group:
    """Checks about one subject: prints a single "ok" line naming what was
    checked when all pass, and each failure on its own line otherwise."""

    def __init__(self, subject):
        self.subject, self.passed, self.failures = subject, [], []

    def check(self, cond, what):
        (self.passed if cond else self.failures).append(what)
        return cond

    def done(self):
        global failed
        if self.failures:
            failed += len(self.failures)
            for f in self.failures:
                print(f"  FAIL  {self.subject}: {f}")
        elif self.passed:
            print(f"  ok    {self.subject}: {', '.join(self.passed)}")


def finish():
    if failed:
        print(f"  {failed} check(s) failed")
        sys.exit(1)


def rel(path):
    return path.relative_to(ROOT)


# ---------------------------------------------------------------- k8s ----


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def pod_template(doc):
    return doc["spec"]["template"]


def cmd_k8s():
    from kubernetes_validate import utils as kv
    from kubernetes_validate.version import __version__ as kv_version

    docs = {}  # (kind, name) -> (path, doc)
    print(f"  schemas: kubernetes-validate {kv_version}, strict (unknown fields fail), "
          f"Kubernetes {' and '.join(K8S_VERSIONS)}")
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in load_docs(path):
            kind, name = doc.get("kind"), doc.get("metadata", {}).get("name", "")
            docs[(kind, name)] = (path, doc)
            if kind == "Kustomization":
                continue  # not an API object; checked below
            g = Group(f"{rel(path)} {kind}/{name}")
            if kind in CRD_KINDS:
                print(f"  SKIP  {g.subject}: NOT schema-checked: {CRD_KINDS[kind]}, "
                      "no offline schema on PyPI/Debian (cross-file rules below still apply)")
                continue
            for version in K8S_VERSIONS:
                try:
                    kv.validate(doc, version, strict=True)
                    g.check(True, f"schema {version}")
                except kv.ValidationError as e:
                    g.check(False, f"schema {version}: {'.'.join(map(str, e.path))}: {e.message}")
                except kv.SchemaNotFoundError as e:
                    g.check(False, f"{e.message} (a CRD? add it to CRD_KINDS)")
            if kind in ("Deployment", "Job"):
                pod = pod_template(doc)["spec"]
                psc = pod.get("securityContext", {})
                g.check(psc.get("runAsNonRoot") is True, "runAsNonRoot")
                g.check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccomp RuntimeDefault")
                for c in pod["containers"]:
                    csc = c.get("securityContext", {})
                    res = c.get("resources", {})
                    g.check(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
                    g.check(csc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
                    g.check(csc.get("capabilities", {}).get("drop") == ["ALL"], "drops ALL capabilities")
                    g.check(bool(res.get("requests")) and bool(res.get("limits")), "requests+limits")
                    bad = [f"{s}.{k}={v}" for s in ("requests", "limits")
                           for k, v in (res.get(s) or {}).items() if not QUANTITY.match(str(v))]
                    g.check(not bad, f"quantities{' not valid: ' + ', '.join(bad) if bad else ''}")
            if path.parent == K8S and kind != "Namespace":
                g.check(doc["metadata"].get("namespace") == "lucent", "namespace lucent")
            g.done()

    print("  kustomization.yaml:")
    g = Group("deploy/k8s/kustomization.yaml")
    listed = docs[("Kustomization", "")][1].get("resources", [])
    core = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    missing = [r for r in listed if not (K8S / r).is_file()]
    g.check(not missing, f"listed files exist{': missing ' + ', '.join(missing) if missing else ''}")
    g.check(not [r for r in listed if r.startswith("examples")], "no examples/ (they need CRDs)")
    unlisted = sorted(set(core) - set(listed))
    g.check(not unlisted, f"lists all {len(core)} core manifests{': not listed ' + ', '.join(unlisted) if unlisted else ''}")
    g.done()

    print("  cross-file rules:")
    config = docs[("ConfigMap", "lucent-config")][1]["data"]
    drain_s = int(config["LUCENT_DRAIN_TIMEOUT_MS"]) / 1000
    max_body = int(config["LUCENT_MAX_BODY_BYTES"])
    for name in ("lucent-ingest", "lucent-consumer"):
        doc = docs[("Deployment", name)][1]
        pod = pod_template(doc)["spec"]
        c = pod["containers"][0]
        g = Group(f"Deployment/{name}")
        admin = {p["name"]: p["containerPort"] for p in c["ports"]}["admin"]
        env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
        g.check(env.get("LUCENT_ADMIN_LISTEN", "").endswith(f":{admin}"), f"LUCENT_ADMIN_LISTEN on admin port {admin}")
        g.check(c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}, "liveness /healthz")
        g.check(c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}, "readiness /readyz")
        g.check(bool(pod.get("topologySpreadConstraints")), "topology spread")
        pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        sleep_s = int(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0
        grace = pod.get("terminationGracePeriodSeconds", 30)
        g.check(grace > sleep_s + drain_s,
                f"grace {grace}s > preStop {sleep_s}s + LUCENT_DRAIN_TIMEOUT_MS {drain_s:g}s")
        if name == "lucent-ingest":
            g.check(sleep_s > 0, "preStop sleep")
            g.check("replicas" not in doc["spec"], "replicas left to the HPA")
            hpa = docs[("HorizontalPodAutoscaler", name)][1]["spec"]["scaleTargetRef"]
            g.check(hpa["kind"] == "Deployment" and hpa["name"] == name, "HPA targets it")
        for pdb_name in [n for (k, n), (_, d) in docs.items() if k == "PodDisruptionBudget"
                         and d["spec"]["selector"]["matchLabels"].items() <= pod_template(doc)["metadata"]["labels"].items()]:
            g.check(True, f"PDB {pdb_name}")
        g.done()

    g = Group("examples/kafka-topics.yaml")
    topics = {d["spec"].get("topicName", n): d for (k, n), (_, d) in docs.items() if k == "KafkaTopic"}
    g.check(sorted(topics) == ["lucent.replay.dlq", "lucent.replay.raw"], f"topics {sorted(topics)}")
    partitions = topics["lucent.replay.raw"]["spec"]["partitions"]
    replicas = docs[("Deployment", "lucent-consumer")][1]["spec"]["replicas"]
    g.check(replicas <= partitions, f"consumer replicas {replicas} <= raw partitions {partitions}")
    for topic, d in sorted(topics.items()):
        mmb = int(d["spec"]["config"]["max.message.bytes"])
        g.check(mmb >= max_body + 64 * 1024, f"{topic} max.message.bytes {mmb} >= LUCENT_MAX_BODY_BYTES {max_body} + 64 KiB")
    g.done()

    g = Group("examples/monitoring.yaml")
    svc = docs[("Service", "lucent-ingest")][1]
    sm = docs[("ServiceMonitor", "lucent-ingest")][1]["spec"]
    g.check(sm["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items(), "ServiceMonitor selects Service/lucent-ingest")
    g.check(sm["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]}, "on a port the Service has")
    g.check(svc["metadata"]["labels"].get(sm["jobLabel"]) == "lucent-ingest", 'job="lucent-ingest" as alerts.yml expects')
    consumer = pod_template(docs[("Deployment", "lucent-consumer")][1])
    pm = docs[("PodMonitor", "lucent-consumer")][1]["spec"]
    g.check(pm["selector"]["matchLabels"].items() <= consumer["metadata"]["labels"].items(), "PodMonitor selects the consumer pods")
    g.check(pm["podMetricsEndpoints"][0]["port"] in {p["name"] for p in consumer["spec"]["containers"][0]["ports"]},
            "on a port the pods have")
    g.check(consumer["metadata"]["labels"].get(pm["jobLabel"]) == "lucent-consumer", 'job="lucent-consumer" as alerts.yml expects')
    g.done()
    finish()


# ------------------------------------------------------------ metrics ----

TOKEN = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
SUFFIXES = ("_bucket", "_sum", "_count")


def defined_metrics():
    return set(re.findall(r'"(lucent_[a-z0-9_]+)"', METRIC_NAMES.read_text()))


def used_metrics(text):
    """Every lucent_* identifier, with histogram series suffixes stripped."""
    names = set()
    for tok in TOKEN.findall(text):
        if not tok.startswith("lucent_") or ":" in tok:
            continue  # a recording rule's name (level:metric:op), not an exported metric
        for s in SUFFIXES:
            if tok.endswith(s):
                tok = tok[: -len(s)]
                break
        names.add(tok)
    return names


def cmd_metrics():
    defined = defined_metrics()
    if not defined:
        print(f"  FAIL  no metric names found in {rel(METRIC_NAMES)}")
        sys.exit(1)
    print(f"  {len(defined)} metric names defined in {rel(METRIC_NAMES)}")
    for path in (ALERTS, ALERTS_TEST, DASHBOARD):
        used = used_metrics(path.read_text())
        unknown = sorted(used - defined)
        g = Group(str(rel(path)))
        g.check(not unknown, f"{len(used)} metric names used, all defined"
                if not unknown else f"not in metric_names.rs: {', '.join(unknown)}")
        g.done()
    unused = sorted(defined - used_metrics(DASHBOARD.read_text()))
    if unused:
        print(f"  note  defined but not on the dashboard: {', '.join(unused)}")
    finish()


# ------------------------------------------------------------- alerts ----


def cmd_alerts():
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"] if "alert" in r]
    firing, quiet = set(), set()
    for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    print(f"  {len(rules)} alerts in {rel(ALERTS)}")
    for r in rules:
        g = Group(r["alert"])
        g.check(r.get("annotations", {}).get("runbook", "").strip().endswith("."), "runbook sentence")
        g.check(bool(r.get("annotations", {}).get("summary")), "summary")
        g.check(r.get("labels", {}).get("severity") in ("critical", "warning"), "severity")
        g.check(r["alert"] in firing, "tested firing")
        g.check(r["alert"] in quiet, "tested not firing")
        g.done()
    stray = sorted((firing | quiet) - {r["alert"] for r in rules})
    g = Group(str(rel(ALERTS_TEST)))
    g.check(not stray, "names only existing alerts" if not stray else f"names unknown alerts {', '.join(stray)}")
    g.done()
    finish()


# ---------------------------------------------------------- dashboard ----


def substitute(expr):
    """Grafana's template variables, replaced by values Prometheus accepts."""
    return expr.replace("$__rate_interval", "5m").replace("$instance", ".*")


def cmd_dashboard(promql_out=None):
    dash = json.loads(DASHBOARD.read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dash["panels"]]
    g = Group(str(rel(DASHBOARD)))
    g.check(bool(dash.get("uid")), f"uid {dash.get('uid')}")
    g.check(len(ids) == len(set(ids)), f"{len(panels)} panels with unique ids")
    g.check("datasource" in {v["name"] for v in dash["templating"]["list"]}, "datasource variable")
    off = [p["title"] for p in panels if p["datasource"].get("uid") != "${datasource}"
           or any(t["datasource"].get("uid") != "${datasource}" for t in p["targets"])]
    g.check(not off, "every panel uses it" if not off else f"panels not using it: {', '.join(off)}")
    empty = [p["title"] for p in panels if not p["targets"] or not all(t.get("expr") for t in p["targets"])]
    g.check(not empty, "every panel has queries" if not empty else f"panels without queries: {', '.join(empty)}")
    g.done()
    if promql_out:
        queries = [substitute(t["expr"]) for p in panels for t in p["targets"]]
        rules = [{"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)]
        Path(promql_out).write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    finish()


COMMANDS = {"k8s": cmd_k8s, "metrics": cmd_metrics, "alerts": cmd_alerts, "dashboard": cmd_dashboard}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(COMMANDS)}}} [ARGS]")
    COMMANDS[sys.argv[1]](*sys.argv[2:])
