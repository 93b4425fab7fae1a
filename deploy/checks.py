#!/usr/bin/env python3
"""Offline checks of deploy/ that no off-the-shelf tool does. Run by check.sh.

    python3 deploy/checks.py k8s              # schema-validate manifests, plus cross-file rules
    python3 deploy/checks.py metrics          # metric names used exist in metric_names.rs
    python3 deploy/checks.py alerts           # runbooks, severities, a firing and a quiet test per alert
    python3 deploy/checks.py dashboard [OUT]  # panels; with OUT, its queries as rules for promtool
    python3 deploy/checks.py jobs             # scrape jobs agree: alerts, prometheus.yml, compose, monitors, dashboard
    python3 deploy/checks.py compose          # the schema service runs before every store client in compose

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
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
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

# The Lucent Deployments, each its own Prometheus job (the app.kubernetes.io/name
# label, through the monitors' jobLabel), and how it is scraped in
# examples/monitoring.yaml: through its Service, or its pods directly.
BINARIES = {
    "lucent-ingest": "ServiceMonitor",
    "lucent-consumer": "PodMonitor",
    "lucent-query": "ServiceMonitor",
}

# Settings two binaries must agree on, so they may come only from the shared
# ConfigMap (a Deployment that overrides one would disagree with the others).
SHARED_ONLY = {
    # The consumer's TTL on session data, and how long lucent-query keeps an
    # erasure tombstone (the consumer drops an erased session's batches while one
    # exists); the schema step sizes the tables for it and records it, and both
    # services refuse to start on a keyspace recorded with another value.
    "LUCENT_RETENTION_DAYS": ("lucent-consumer", "lucent-query", "lucent-schema"),
}

# Everything in deploy/k8s that opens the ScyllaDB store, and the Secret of the
# role it logs in with: the services' role may only SELECT and MODIFY, the
# schema role may also CREATE and ALTER, so a service must never get the latter.
# Each mounts its Secret and the CA where lucent-config's paths point, so that a
# pod missing a mount, or mounting another role's Secret, fails here rather
# than at its first connection.
SERVICE_SECRET = "lucent-scylla-service"
SCHEMA_SECRET = "lucent-scylla-schema-admin"
SCYLLA_CA = "lucent-scylla-ca"
STORE_CLIENTS = {
    ("Deployment", "lucent-ingest"): SERVICE_SECRET,
    ("Deployment", "lucent-consumer"): SERVICE_SECRET,
    ("Deployment", "lucent-query"): SERVICE_SECRET,
    ("Job", "lucent-schema"): SCHEMA_SECRET,
    ("Job", "lucent-create-key-ORG"): SERVICE_SECRET,
}
SCHEMA_JOB = ("Job", "lucent-schema")
SCHEMA_COMMAND = ["lucent-consumer", "schema", "apply"]
# Only the schema step creates the keyspace; a service given the variable would
# ignore it, and a reader would wrongly believe it describes the keyspace.
REPLICATION = "LUCENT_SCYLLA_REPLICATION"
# Store settings a pod may set itself; every other LUCENT_SCYLLA_* and
# LUCENT_STORE comes from lucent-config, so the Job and the services reach the
# same cluster the same way.
OWN_SCYLLA_ENV = {"LUCENT_SCYLLA_USERNAME"}

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


def path_of(docs, kind, name):
    return docs[(kind, name)][0]


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
    services = {n: d for (k, n), (_, d) in docs.items() if k == "Service" and path_of(docs, k, n).parent == K8S}
    for name in BINARIES:
        doc = docs[("Deployment", name)][1]
        pod = pod_template(doc)["spec"]
        labels = pod_template(doc)["metadata"]["labels"]
        c = pod["containers"][0]
        g = Group(f"Deployment/{name}")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        admin = ports["admin"]
        env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
        g.check(env.get("LUCENT_ADMIN_LISTEN", "").endswith(f":{admin}"), f"LUCENT_ADMIN_LISTEN on admin port {admin}")
        if "http" in ports:
            g.check(env.get("LUCENT_LISTEN", "").endswith(f":{ports['http']}"), f"LUCENT_LISTEN on http port {ports['http']}")
        g.check(c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}, "liveness /healthz")
        g.check(c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}, "readiness /readyz")
        g.check(bool(pod.get("topologySpreadConstraints")), "topology spread")
        g.check({"configMapRef": {"name": "lucent-config"}} in c.get("envFrom", []), "env from ConfigMap/lucent-config")
        pinned = sorted(set(env) & set(SHARED_ONLY))
        g.check(not pinned, "shared settings from the ConfigMap only"
                if not pinned else f"overrides {', '.join(pinned)}, which must come from the ConfigMap")
        pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        sleep_s = int(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0
        grace = pod.get("terminationGracePeriodSeconds", 30)
        g.check(grace > sleep_s + drain_s,
                f"grace {grace}s > preStop {sleep_s}s + LUCENT_DRAIN_TIMEOUT_MS {drain_s:g}s")
        fronting = [n for n, svc in services.items() if svc["spec"]["selector"].items() <= labels.items()]
        if fronting:
            # Traffic through a Service: wait for the endpoints to drop the pod.
            g.check(sleep_s > 0, "preStop sleep")
        for svc_name in fronting:
            targets = [p["targetPort"] for p in services[svc_name]["spec"]["ports"]]
            missing = [t for t in targets if t not in ports]
            g.check(not missing, f"Service/{svc_name} targets its ports {', '.join(map(str, targets))}"
                    if not missing else f"Service/{svc_name} targets ports the pod lacks: {', '.join(map(str, missing))}")
        if name == "lucent-ingest":
            g.check("replicas" not in doc["spec"], "replicas left to the HPA")
            hpa = docs[("HorizontalPodAutoscaler", name)][1]["spec"]["scaleTargetRef"]
            g.check(hpa["kind"] == "Deployment" and hpa["name"] == name, "HPA targets it")
        pdbs = [d for (k, n), (_, d) in docs.items() if k == "PodDisruptionBudget"
                and d["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        g.check(len(pdbs) == 1, f"PDB {pdbs[0]['metadata']['name']}" if len(pdbs) == 1 else f"{len(pdbs)} PDBs select it")
        if name == "lucent-query" and pdbs:
            replicas = doc["spec"].get("replicas", 1)
            g.check(replicas >= 2 and pdbs[0]["spec"].get("maxUnavailable") == 1,
                    f"{replicas} replicas, PDB maxUnavailable 1: one always answers")
        g.done()

    g = Group("ConfigMap/lucent-config")
    for key, readers in SHARED_ONLY.items():
        g.check(key in config, f"{key} set once for {' and '.join(readers)}")
    g.done()

    check_store_clients(docs, config)

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
    for name, kind in BINARIES.items():
        monitor = docs.get((kind, name))
        if not g.check(monitor is not None, f"{kind}/{name}"):
            continue
        spec = monitor[1]["spec"]
        if kind == "ServiceMonitor":
            svc = docs[("Service", name)][1]
            target_labels = svc["metadata"]["labels"]
            target_ports = {p["name"] for p in svc["spec"]["ports"]}
            what = f"Service/{name}"
            port = spec["endpoints"][0]["port"]
        else:
            pod = pod_template(docs[("Deployment", name)][1])
            target_labels = pod["metadata"]["labels"]
            target_ports = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
            what = f"the {name} pods"
            port = spec["podMetricsEndpoints"][0]["port"]
        g.check(spec["selector"]["matchLabels"].items() <= target_labels.items(), f"{kind} selects {what}")
        g.check(port in target_ports, f"on port {port} of {what}")
        g.check(target_labels.get(spec["jobLabel"]) == name, f'job="{name}" as alerts.yml expects')
    g.done()
    finish()


def containers_of(doc):
    return pod_template(doc)["spec"]["containers"]


def mounted_file(pod, container, path):
    """(kind, name, key, read-only) of the volume that puts file `path` into
    the container, or None; kind is "secret" or "configMap"."""
    directory, _, filename = path.rpartition("/")
    mount = next((m for m in container.get("volumeMounts", []) if m["mountPath"].rstrip("/") == directory), None)
    if mount is None or mount.get("subPath"):
        return None
    volume = next((v for v in pod.get("volumes", []) if v["name"] == mount["name"]), {})
    for kind, name_field in (("secret", "secretName"), ("configMap", "name")):
        if kind in volume:
            items = volume[kind].get("items")
            key = filename if items is None else next((i["key"] for i in items if i["path"] == filename), None)
            return (kind, volume[kind].get(name_field), key, mount.get("readOnly") is True) if key else None
    return None


def replication_dcs(literal):
    """Data center -> replication factor of a NetworkTopologyStrategy map literal."""
    pairs = dict(re.findall(r"'([^']+)'\s*:\s*'?([^',}]+)'?", literal))
    if pairs.pop("class", "").split(".")[-1] != "NetworkTopologyStrategy":
        return None
    return {dc: int(rf) for dc, rf in pairs.items()}


def check_store_clients(docs, config):
    """Every pod that opens the store logs in with its role's Secret and
    verifies the nodes with the CA, at the paths the ConfigMap names; TLS is on
    wherever credentials travel; the keyspace's replication is set in the schema
    Job only, and matches the ScyllaCluster example."""
    print("  store clients:")
    g = Group("ConfigMap/lucent-config (ScyllaDB)")
    bools = {k: v for k, v in config.items() if k in ("LUCENT_SCYLLA_TLS", "LUCENT_SCYLLA_ALLOW_PLAINTEXT_CREDENTIALS")}
    bad = [f"{k}={v!r}" for k, v in bools.items() if v not in ("true", "false")]
    g.check(not bad, "booleans are true/false" if not bad else f"booleans not true/false: {', '.join(bad)}")
    g.check(config.get("LUCENT_SCYLLA_TLS") == "true", "LUCENT_SCYLLA_TLS true (credentials cross the network)")
    g.check(config.get("LUCENT_SCYLLA_ALLOW_PLAINTEXT_CREDENTIALS", "false") == "false", "no plaintext credentials")
    for key in ("LUCENT_SCYLLA_TLS_CA_FILE", "LUCENT_SCYLLA_PASSWORD_FILE"):
        g.check(config.get(key, "").startswith("/"), f"{key} an absolute path")
    secrets = sorted(k for k in config if "PASSWORD" in k and k != "LUCENT_SCYLLA_PASSWORD_FILE")
    g.check(not secrets, "no password in it" if not secrets else f"holds {', '.join(secrets)}: use a Secret file")
    g.check(REPLICATION not in config, f"no {REPLICATION} (the schema Job's only)")
    g.done()
    ca_file, password_file = config.get("LUCENT_SCYLLA_TLS_CA_FILE", ""), config.get("LUCENT_SCYLLA_PASSWORD_FILE", "")

    for (kind, name), secret in STORE_CLIENTS.items():
        entry = docs.get((kind, name))
        g = Group(f"{kind}/{name}")
        if not g.check(entry is not None, "exists"):
            g.done()
            continue
        pod = pod_template(entry[1])["spec"]
        for c in containers_of(entry[1]):
            env = {e["name"]: e for e in c.get("env", [])}
            g.check({"configMapRef": {"name": "lucent-config"}} in c.get("envFrom", []), "env from ConfigMap/lucent-config")
            allowed = OWN_SCYLLA_ENV | ({REPLICATION} if (kind, name) == SCHEMA_JOB else set())
            own = sorted(n for n in env if (n.startswith("LUCENT_SCYLLA_") or n in ("LUCENT_STORE", *SHARED_ONLY))
                         and n not in allowed)
            g.check(not own, "store settings from the ConfigMap only"
                    if not own else f"sets {', '.join(own)} itself, which must come from lucent-config")
            user = env.get("LUCENT_SCYLLA_USERNAME", {}).get("valueFrom", {}).get("secretKeyRef", {})
            g.check(user.get("name") == secret and user.get("key") == "username",
                    f"LUCENT_SCYLLA_USERNAME from Secret/{secret}"
                    if user.get("name") == secret else f"LUCENT_SCYLLA_USERNAME from {user or 'no Secret'}, expected Secret/{secret}")
            got = mounted_file(pod, c, password_file)
            g.check(got is not None and got[:2] == ("secret", secret) and got[3],
                    f"Secret/{secret} read-only at {password_file}"
                    if got and got[:2] == ("secret", secret) and got[3] else f"{password_file} is {got or 'not mounted'}, expected Secret/{secret}")
            got = mounted_file(pod, c, ca_file)
            g.check(got is not None and got[1] == SCYLLA_CA and got[3],
                    f"{SCYLLA_CA} read-only at {ca_file}" if got and got[1] == SCYLLA_CA and got[3]
                    else f"{ca_file} is {got or 'not mounted'}, expected {SCYLLA_CA}")
        psc = pod.get("securityContext", {})
        g.check(psc.get("fsGroup") == psc.get("runAsUser"), "fsGroup lets its user read the 0440 Secret file")
        g.done()

    job = docs.get(SCHEMA_JOB)
    g = Group("Job/lucent-schema")
    if g.check(job is not None and job[0].parent == K8S, "in deploy/k8s"):
        spec = job[1]["spec"]
        pod = pod_template(job[1])["spec"]
        c = pod["containers"][0]
        g.check(c.get("command") == SCHEMA_COMMAND, " ".join(SCHEMA_COMMAND))
        g.check(pod.get("restartPolicy") == "OnFailure", "restartPolicy OnFailure")
        g.check("backoffLimit" in spec and "ttlSecondsAfterFinished" in spec, "backoffLimit and ttlSecondsAfterFinished")
        images = {c2["image"] for n in BINARIES for c2 in containers_of(docs[("Deployment", n)][1])}
        g.check(images == {c["image"]}, f"image {c['image']}, the Deployments' (one release)"
                if images == {c["image"]} else f"image {c['image']}, Deployments {sorted(images)}")
        env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
        dcs = replication_dcs(env.get(REPLICATION, ""))
        g.check(dcs is not None, f"{REPLICATION} NetworkTopologyStrategy" if dcs is not None
                else f"{REPLICATION} {env.get(REPLICATION)!r}: want NetworkTopologyStrategy with data centers named")
        local_dc = config.get("LUCENT_SCYLLA_LOCAL_DC")
        if dcs is not None and local_dc:
            g.check(local_dc in dcs, f"LUCENT_SCYLLA_LOCAL_DC {local_dc} has replicas")
        clusters = [d for (k, _), (_, d) in docs.items() if k == "ScyllaCluster"]
        for sc in clusters:
            dc = sc["spec"]["datacenter"]
            nodes = sum(r.get("members", 0) for r in dc["racks"])
            want = {dc["name"]: min(nodes, 3)}
            g.check(dcs == want, f"replication {dcs} fits ScyllaCluster/{sc['metadata']['name']} ({nodes} nodes in {dc['name']})"
                    if dcs == want else f"replication {dcs}, ScyllaCluster/{sc['metadata']['name']} suggests {want}")
    g.done()

    g = Group(f"{REPLICATION} placement")
    stray = []
    for (kind, name), (path, doc) in docs.items():
        if kind == "ConfigMap" and REPLICATION in (doc.get("data") or {}):
            stray.append(f"{rel(path)} {kind}/{name}")
        if kind in ("Deployment", "Job") and (kind, name) != SCHEMA_JOB:
            if any(e["name"] == REPLICATION for c in containers_of(doc) for e in c.get("env", [])):
                stray.append(f"{rel(path)} {kind}/{name}")
    g.check(not stray, "in Job/lucent-schema only" if not stray else f"also in {', '.join(stray)}")
    g.done()

    g = Group("Secrets")
    core = sorted(f"{rel(p)} Secret/{n}" for (k, n), (p, _) in docs.items() if k == "Secret" and p.parent == K8S)
    g.check(not core, "none in deploy/k8s (examples only)" if not core else f"in deploy/k8s: {', '.join(core)}")
    for (k, n), (p, d) in docs.items():
        if k == "Secret":
            values = {**(d.get("stringData") or {}), **(d.get("data") or {})}
            real = sorted(key for key, v in values.items() if key == "password" and "REPLACE-ME" not in str(v))
            g.check(not real, f"{n}: placeholder password" if not real else f"{n}: {', '.join(real)} is not a REPLACE-ME placeholder")
    wanted = sorted({SERVICE_SECRET, SCHEMA_SECRET} - {n for (k, n) in docs if k == "Secret"})
    g.check(not wanted, "examples of both roles' Secrets" if not wanted else f"no example of Secret {', '.join(wanted)}")
    g.check(("ConfigMap", SCYLLA_CA) in docs, f"example of ConfigMap/{SCYLLA_CA}")
    g.done()


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


# --------------------------------------------------------------- jobs ----

JOB_SELECTOR = re.compile(r'job\s*=~?\s*"([^"]+)"')


def jobs_named(text):
    """The lucent-* job names in `job="…"` and `job=~"a|b"` selectors."""
    return {j for m in JOB_SELECTOR.findall(text) for j in m.split("|") if j.startswith("lucent-")}


def cmd_jobs():
    """The scrape jobs agree everywhere: every Lucent binary is scraped by
    prometheus.yml (compose) on the admin port its compose service listens on,
    and is a job the alerts and the dashboard's instance picker name."""
    scrape = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    scraped = {c["job_name"]: [t for sc in c.get("static_configs", []) for t in sc["targets"]]
               for c in scrape if c["job_name"].startswith("lucent-")}
    services = yaml.safe_load(COMPOSE.read_text())["services"]

    g = Group(str(rel(PROMETHEUS)))
    g.check(set(scraped) == set(BINARIES), f"scrapes {', '.join(sorted(scraped))}"
            if set(scraped) == set(BINARIES) else f"scrapes {sorted(scraped)}, expected {sorted(BINARIES)}")
    for job, targets in sorted(scraped.items()):
        for target in targets:
            host, _, port = target.rpartition(":")
            svc = services.get(host) or {}
            listen = str((svc.get("environment") or {}).get("LUCENT_ADMIN_LISTEN", ""))
            runs = (svc.get("command") or [""])[0]
            g.check(runs == job and listen.endswith(f":{port}"),
                    f"{job} at {target}: compose service {host} runs it, admin on :{port}"
                    if runs == job and listen.endswith(f":{port}")
                    else f"{job} at {target}: compose service {host!r} runs {runs!r} with LUCENT_ADMIN_LISTEN {listen!r}")
    g.done()

    g = Group(str(rel(COMPOSE)))
    for key, readers in SHARED_ONLY.items():
        values = {r: str((services[r.removeprefix("lucent-")].get("environment") or {}).get(key, "default"))
                  for r in readers}
        g.check(len(set(values.values())) == 1, f"{key} the same for {' and '.join(readers)} ({values[readers[0]]})"
                if len(set(values.values())) == 1 else f"{key} differs: {values}")
    g.done()

    for path in (ALERTS, ALERTS_TEST):
        named = jobs_named(path.read_text())
        g = Group(str(rel(path)))
        unknown = sorted(named - set(BINARIES))
        g.check(not unknown, f"jobs {', '.join(sorted(named))} all scraped" if not unknown
                else f"names jobs nothing scrapes: {', '.join(unknown)}")
        if path == ALERTS:
            down = next(r["expr"] for grp in yaml.safe_load(path.read_text())["groups"]
                        for r in grp["rules"] if r.get("alert") == "LucentTargetDown")
            g.check(jobs_named(down) == set(BINARIES), "LucentTargetDown covers every job")
            absent = {r["labels"].get("job") for grp in yaml.safe_load(path.read_text())["groups"]
                      for r in grp["rules"] if "absent(" in r.get("expr", "")}
            g.check(absent >= set(BINARIES), "an absent() alert per job"
                    if absent >= set(BINARIES) else f"no absent() alert for {', '.join(sorted(set(BINARIES) - absent))}")
        g.done()

    g = Group(str(rel(DASHBOARD)))
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    picker = next(v for v in variables if v["name"] == "instance")
    named = jobs_named(picker["definition"])
    g.check(named == set(BINARIES), "instance picker lists every job" if named == set(BINARIES)
            else f"instance picker lists {sorted(named)}, expected {sorted(BINARIES)}")
    g.done()
    finish()


# ------------------------------------------------------------ compose ----


def cmd_compose():
    """The compose file runs the schema step, as the cluster does: one
    one-shot service creates the keyspace (the only one given its replication),
    every service that opens the store starts after it has exited 0, and they
    all reach the same store with the same retention."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    env = {n: svc.get("environment") or {} for n, svc in services.items()}
    schema = [n for n, svc in services.items() if (svc.get("command") or [])[:3] == SCHEMA_COMMAND]
    clients = [n for n in services if "LUCENT_STORE" in env[n] and n not in schema]
    g = Group(str(rel(COMPOSE)))
    if g.check(len(schema) == 1, f"one schema service ({', '.join(schema)})"
               if len(schema) == 1 else f"{len(schema)} services run {' '.join(SCHEMA_COMMAND)}"):
        name = schema[0]
        svc = services[name]
        g.check(str(svc.get("restart", "no")) == "no", f"{name} runs once")
        g.check((svc.get("depends_on") or {}).get("scylla", {}).get("condition") == "service_healthy",
                f"{name} waits for scylla healthy")
        g.check(REPLICATION in env[name], f"{name} sets {REPLICATION}")
        for client in clients:
            cond = (services[client].get("depends_on") or {}).get(name, {}).get("condition")
            g.check(cond == "service_completed_successfully", f"{client} after {name} completed"
                    if cond == "service_completed_successfully" else f"{client} does not wait for {name} to complete ({cond})")
        stores = {n: env[n].get("LUCENT_STORE") for n in [name, *clients]}
        g.check(len(set(stores.values())) == 1, f"{', '.join(stores)} use one LUCENT_STORE"
                if len(set(stores.values())) == 1 else f"LUCENT_STORE differs: {stores}")
    stray = sorted(n for n in services if REPLICATION in env[n] and n not in schema)
    g.check(not stray, f"{REPLICATION} in the schema service only" if not stray else f"{REPLICATION} also in {', '.join(stray)}")
    g.check(bool(clients), f"store clients {', '.join(clients)}")
    g.done()
    finish()


COMMANDS = {"k8s": cmd_k8s, "metrics": cmd_metrics, "alerts": cmd_alerts, "dashboard": cmd_dashboard, "jobs": cmd_jobs,
            "compose": cmd_compose}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(COMMANDS)}}} [ARGS]")
    COMMANDS[sys.argv[1]](*sys.argv[2:])
