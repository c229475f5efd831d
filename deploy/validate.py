#!/usr/bin/env python3
"""Checks rendered flacstream manifests (kubectl kustomize output) for the
relations deploy/README.md promises, which no schema check would catch:

* every object parses and has apiVersion, kind and metadata.name;
* one workload, a Deployment (no StatefulSet, no volume claim), and the
  Service, ConfigMap, PodDisruptionBudget, NetworkPolicy, Gateway and
  HTTPRoute are there;
* terminationGracePeriodSeconds >= preStop wait + drain grace + stall
  + flush margin (5 s) + 10 s, with the values from the ConfigMap, and the
  preStop wait >= drain grace + stall + flush margin, so the hook outlasts
  the drain it starts;
* the probes, a locked-down container, and a data emptyDir with room for
  one upload (FLACSTREAM_MAX_UPLOAD_BYTES);
* no affinity anywhere: no Ingress, no ingress-nginx or hash/cookie/sticky
  annotation, no Service sessionAffinity, no HTTPRoute sessionPersistence;
* routing: each HTTPRoute hangs on a listener of the Gateway, with that
  listener's host name; the https routes send only the public paths to the
  Service's port with no deadline on the exchange, and the http listener
  only redirects; FLACSTREAM_ALLOWED_ORIGINS lists https://<host>;
* the mode. Scaled (the pods take envFrom a Secret): FLACSTREAM_ADVERTISE_URL
  from the pod's IP, an HPA on flacstream_active_streams that targets the
  Deployment with a per-pod target below FLACSTREAM_MAX_SESSIONS, and
  NetworkPolicies that let the pods reach each other on 8080 (relayed
  listeners), PostgreSQL on 5432 and DNS. Embedded: one pod and no HPA, since
  its sessions live in that pod alone and nothing routes them to it;
* with --secret-example FILE (scaled renders only): FILE is a Secret named as
  the envFrom secretRef, with the keys scaled mode needs, and the render
  itself holds no Secret;
* auth: FLACSTREAM_AUTH=true and FLACSTREAM_BIND stated in the ConfigMap,
  no FLACSTREAM_ALLOW_PUBLIC_WITHOUT_AUTH=true and no FLACSTREAM_API_KEYS
  there, and FLACSTREAM_API_KEYS_FILE and FLACSTREAM_TOKEN_SECRET_FILE are
  files of a mounted, non-optional Secret volume; with --auth-secret-example
  FILE, FILE is that Secret with those keys.

Usage: validate.py [--secret-example FILE] [--auth-secret-example FILE] RENDERED.yaml...
Exit 0 if all hold, else 1.
"""

import argparse
import re
import sys

import yaml

# src/drain.rs DRAIN_FLUSH_MARGIN_SECONDS.
FLUSH_MARGIN_SECONDS = 5
# What terminationGracePeriodSeconds keeps beyond the sum, for the kubelet.
KILL_MARGIN_SECONDS = 10
DEFAULTS = {"FLACSTREAM_DRAIN_GRACE_SECONDS": 30, "FLACSTREAM_OUTBOUND_STALL_SECONDS": 10}
CONTAINER_PORT = 8080
POSTGRES_PORT = 5432
# Paths that must stay inside the cluster (README.md "Authentication").
PRIVATE_PATHS = ("/healthz", "/readyz", "/metrics", "/admin")
# Annotations that pin a client or a session to a pod.
AFFINITY = re.compile(r"affinity|hash-by|session-cookie|sticky|consistent-hash", re.I)
SCALED_KEYS = ("FLACSTREAM_DATABASE_URL", "FLACSTREAM_STORAGE_URL")
QUANTITY = {"": 1, "k": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
            "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


def quantity(text):
    m = re.fullmatch(r"(\d+)([kMGT]i?|Ki)?", str(text).strip())
    if not m:
        raise ValueError(f"not a quantity: {text}")
    return int(m.group(1)) * QUANTITY[m.group(2) or ""]


def selects(selector, labels):
    """Whether a label selector with matchLabels only selects `labels`."""
    if selector is None:
        return False
    if set(selector) - {"matchLabels"}:
        return False
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def port_allows(ports, number, name=None, protocol="TCP"):
    if not ports:
        return True
    return any(p.get("protocol", "TCP") == protocol and p.get("port") in (number, name)
               for p in ports)


def annotation_sets(doc):
    yield doc["metadata"].get("annotations") or {}
    template = (doc.get("spec") or {}).get("template") or {}
    yield (template.get("metadata") or {}).get("annotations") or {}


def check_affinity(docs, by_kind, errors):
    for kind in ("Ingress", "StatefulSet"):
        if kind in by_kind:
            errors.append(f"{kind} rendered: the pods are a Deployment behind the Gateway API")
    for d in docs:
        for annotations in annotation_sets(d):
            for key, value in annotations.items():
                if key.startswith("nginx.ingress.kubernetes.io/") or AFFINITY.search(f"{key}={value}"):
                    errors.append(f"{d['kind']}/{d['metadata']['name']} has an affinity annotation {key}")
    for svc in by_kind.get("Service", []):
        if svc["spec"].get("sessionAffinity", "None") != "None":
            errors.append(f"Service/{svc['metadata']['name']} has sessionAffinity")
    for route in by_kind.get("HTTPRoute", []):
        for rule in route["spec"].get("rules", []):
            if "sessionPersistence" in rule:
                errors.append(f"HTTPRoute/{route['metadata']['name']} has sessionPersistence")


def check_routes(by_kind, service, config, errors):
    gateways = {g["metadata"]["name"]: g for g in by_kind.get("Gateway", [])}
    svc_ports = {p["port"] for p in service["spec"]["ports"] if p.get("targetPort") in ("http", CONTAINER_PORT)}
    origins = set(filter(None, config.get("FLACSTREAM_ALLOWED_ORIGINS", "").split(",")))
    public = False
    for route in by_kind.get("HTTPRoute", []):
        name = f"HTTPRoute/{route['metadata']['name']}"
        spec = route["spec"]
        listeners = []
        for ref in spec.get("parentRefs", []):
            gw = gateways.get(ref["name"])
            if gw is None or ref.get("kind", "Gateway") != "Gateway":
                errors.append(f"{name} hangs on {ref['name']}, which is not a rendered Gateway")
                continue
            found = [l for l in gw["spec"]["listeners"] if l["name"] == ref.get("sectionName", l["name"])]
            if not found:
                errors.append(f"{name} names listener {ref.get('sectionName')}, which Gateway/{ref['name']} lacks")
            listeners += found
        for listener in listeners:
            host = listener.get("hostname")
            if host and spec.get("hostnames") != [host]:
                errors.append(f"{name} hostnames {spec.get('hostnames')} != listener {listener['name']}'s {host}")
        protocols = {l["protocol"] for l in listeners}
        for rule in spec.get("rules", []):
            backends = rule.get("backendRefs", [])
            if "HTTP" in protocols and backends:
                errors.append(f"{name} sends plain-http requests to a backend; that listener only redirects")
            if not backends:
                continue
            public = True
            for ref in backends:
                if ref.get("kind", "Service") != "Service" or ref["name"] != service["metadata"]["name"] \
                        or ref.get("port") not in svc_ports:
                    errors.append(f"{name} routes to {ref.get('kind', 'Service')}/{ref['name']}:{ref.get('port')}, "
                                  f"not to Service/{service['metadata']['name']} port {sorted(svc_ports)}")
            if (rule.get("timeouts") or {}).get("request") != "0s":
                errors.append(f"{name}: a rule to the pods has a request deadline; WebSockets last hours (want request: 0s)")
            for match in rule.get("matches", [{"path": {"type": "PathPrefix", "value": "/"}}]):
                path = match.get("path") or {"type": "PathPrefix", "value": "/"}
                value = path.get("value", "/")
                if (path.get("type", "PathPrefix") != "Exact" and value.rstrip("/") == "") \
                        or value.startswith(PRIVATE_PATHS):
                    errors.append(f"{name} routes {path.get('type', 'PathPrefix')} {value}, which exposes "
                                  f"{'/'.join(p.strip('/') for p in PRIVATE_PATHS)}")
        if "HTTPS" in protocols:
            for host in spec.get("hostnames", []):
                if f"https://{host}" not in origins:
                    errors.append(f"FLACSTREAM_ALLOWED_ORIGINS lacks https://{host} ({name})")
    if not public:
        errors.append("no HTTPRoute sends anything to the pods")


def check_network(by_kind, labels, errors):
    """Scaled mode's paths, over every NetworkPolicy that selects the pods."""
    policies = [p for p in by_kind.get("NetworkPolicy", []) if selects(p["spec"].get("podSelector"), labels)]
    ingress = [r for p in policies for r in p["spec"].get("ingress", [])]
    egress = [r for p in policies for r in p["spec"].get("egress", [])]
    restricts_egress = any("Egress" in p["spec"].get("policyTypes", []) for p in policies)

    def from_pods(rule, key):
        return any(selects(peer.get("podSelector"), labels) and "namespaceSelector" not in peer
                   for peer in rule.get(key, []))

    if not any(from_pods(r, "from") and port_allows(r.get("ports"), CONTAINER_PORT, "http") for r in ingress):
        errors.append("no NetworkPolicy lets the pods reach each other on 8080 (relayed listeners)")
    if restricts_egress:
        if not any(from_pods(r, "to") and port_allows(r.get("ports"), CONTAINER_PORT) for r in egress):
            errors.append("no NetworkPolicy lets the pods connect to each other on 8080 (relayed listeners)")
        if not any(port_allows(r.get("ports"), POSTGRES_PORT) for r in egress):
            errors.append("no NetworkPolicy lets the pods reach PostgreSQL on 5432")
        if not any(port_allows(r.get("ports"), 53, protocol="UDP") for r in egress):
            errors.append("no NetworkPolicy lets the pods resolve names (DNS, 53/UDP)")


def check_scaled(container, env, workload, by_kind, config, errors):
    advertise = env.get("FLACSTREAM_ADVERTISE_URL", {}).get("value", "")
    m = re.fullmatch(r"https?://\[?\$\((\w+)\)\]?:(\d+)", advertise)
    if not m:
        errors.append(f"FLACSTREAM_ADVERTISE_URL is {advertise or 'unset'}, not http://$(POD_IP):{CONTAINER_PORT}")
    else:
        names = [e["name"] for e in container.get("env", [])]
        source = env.get(m.group(1), {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if source != "status.podIP" or names.index(m.group(1)) > names.index("FLACSTREAM_ADVERTISE_URL"):
            errors.append(f"$({m.group(1)}) in FLACSTREAM_ADVERTISE_URL is not status.podIP defined before it")
        if int(m.group(2)) != CONTAINER_PORT:
            errors.append(f"FLACSTREAM_ADVERTISE_URL port {m.group(2)} is not the container's {CONTAINER_PORT}")

    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    if not hpas:
        errors.append("scaled mode without an HPA")
    max_sessions = int(config.get("FLACSTREAM_MAX_SESSIONS", 1024))
    for hpa in hpas:
        for metric in hpa["spec"].get("metrics", []):
            if metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "flacstream_active_streams":
                target = float(metric["pods"]["target"]["averageValue"])
                if target >= max_sessions:
                    errors.append(f"HPA target {target} streams/pod is not below the cap {max_sessions}")
                break
        else:
            errors.append("the HPA does not scale on flacstream_active_streams")
        ref = hpa["spec"]["scaleTargetRef"]
        if (ref["kind"], ref["name"]) != (workload["kind"], workload["metadata"]["name"]):
            errors.append(f"the HPA targets {ref['kind']}/{ref['name']}, not the Deployment")
    labels = workload["spec"]["template"]["metadata"].get("labels", {})
    check_network(by_kind, labels, errors)


def check_secret_example(path, secret_names, by_kind, errors):
    if "Secret" in by_kind:
        errors.append("the render holds a Secret; secrets are made in the cluster, not committed")
    with open(path, encoding="utf-8") as f:
        example = yaml.safe_load(f)
    if example.get("kind") != "Secret" or example["metadata"]["name"] not in secret_names:
        errors.append(f"{path} is not the Secret the pods read ({', '.join(secret_names)})")
    keys = set(example.get("stringData") or {}) | set(example.get("data") or {})
    for key in SCALED_KEYS:
        if key not in keys:
            errors.append(f"{path} lacks {key}")


def check_auth(container, pod, config, auth_example, errors):
    """Auth on, and its two files come from a Secret the pod mounts."""
    if config.get("FLACSTREAM_AUTH", "").lower() != "true":
        errors.append(f"FLACSTREAM_AUTH is {config.get('FLACSTREAM_AUTH', 'unset')}, not true")
    if not config.get("FLACSTREAM_BIND"):
        errors.append("FLACSTREAM_BIND is not stated (the server binds loopback by default with auth off)")
    if config.get("FLACSTREAM_ALLOW_PUBLIC_WITHOUT_AUTH", "").lower() in ("true", "1", "yes", "on"):
        errors.append("FLACSTREAM_ALLOW_PUBLIC_WITHOUT_AUTH is on: a public bind without auth")
    if "FLACSTREAM_API_KEYS" in config:
        errors.append("FLACSTREAM_API_KEYS is in the ConfigMap; the keys belong in the Secret's file")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    secret_names = set()
    for var in ("FLACSTREAM_API_KEYS_FILE", "FLACSTREAM_TOKEN_SECRET_FILE"):
        path = config.get(var)
        if not path:
            errors.append(f"{var} is not set: auth needs its keys and a token secret shared by every replica")
            continue
        for mount in container.get("volumeMounts", []):
            prefix = mount["mountPath"].rstrip("/") + "/"
            secret = (volumes.get(mount["name"]) or {}).get("secret")
            if not path.startswith(prefix) or secret is None:
                continue
            rel = path[len(prefix):]
            items = secret.get("items")
            if secret.get("optional"):
                errors.append(f"{var}: the Secret {secret['secretName']} is optional; a pod must not start without it")
            if items is not None and rel not in {i["path"] for i in items}:
                errors.append(f"{var}={path}: the Secret volume {mount['name']} has no item at {rel}")
            secret_names.add(secret["secretName"])
            break
        else:
            errors.append(f"{var}={path} is not in a mounted Secret volume")
    if auth_example:
        with open(auth_example, encoding="utf-8") as f:
            example = yaml.safe_load(f)
        keys = set(example.get("stringData") or {}) | set(example.get("data") or {})
        if example.get("kind") != "Secret" or example["metadata"]["name"] not in secret_names:
            errors.append(f"{auth_example} is not the auth Secret the pods mount ({', '.join(sorted(secret_names))})")
        for volume in volumes.values():
            secret = volume.get("secret") or {}
            if secret.get("secretName") in secret_names:
                for item in secret.get("items") or []:
                    if item["key"] not in keys:
                        errors.append(f"{auth_example} lacks {item['key']}")


def check(path, secret_example=None, auth_example=None):
    errors = []
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        name = (d.get("metadata") or {}).get("name")
        if not (d.get("apiVersion") and d.get("kind") and name):
            errors.append(f"an object lacks apiVersion, kind or metadata.name: {d}")
            continue
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ("Service", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy", "Gateway", "HTTPRoute"):
        if kind not in by_kind:
            errors.append(f"no {kind}")
    check_affinity(docs, by_kind, errors)
    workloads = by_kind.get("Deployment", [])
    if len(workloads) != 1 or "StatefulSet" in by_kind:
        errors.append(f"expected one Deployment and no StatefulSet, found {len(workloads)} and "
                      f"{len(by_kind.get('StatefulSet', []))}")
        return errors
    workload = workloads[0]
    config = dict(DEFAULTS)
    for cm in by_kind.get("ConfigMap", []):
        config.update(cm.get("data") or {})
    grace = int(config["FLACSTREAM_DRAIN_GRACE_SECONDS"])
    stall = int(config["FLACSTREAM_OUTBOUND_STALL_SECONDS"])
    drain_takes = grace + stall + FLUSH_MARGIN_SECONDS

    pod = workload["spec"]["template"]["spec"]
    container = pod["containers"][0]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    wait = int(command[command.index("--wait-seconds") + 1])
    tgps = pod["terminationGracePeriodSeconds"]
    if wait < drain_takes:
        errors.append(f"preStop waits {wait} s but a drain may take {drain_takes} s")
    needed = wait + drain_takes + KILL_MARGIN_SECONDS
    if tgps < needed:
        errors.append(f"terminationGracePeriodSeconds {tgps} < {needed} (wait {wait} + drain {drain_takes} + {KILL_MARGIN_SECONDS})")
    for probe, path_ in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        got = container.get(probe, {}).get("httpGet", {}).get("path")
        if got != path_:
            errors.append(f"{probe} checks {got}, not {path_}")
    sc = container.get("securityContext", {})
    if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
            and "ALL" in sc.get("capabilities", {}).get("drop", [])):
        errors.append("container securityContext is not locked down")

    upload = int(config.get("FLACSTREAM_MAX_UPLOAD_BYTES", config.get("MAX_UPLOAD_BYTES", 2 * 1024**3)))
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    data = volumes.get(mounts.get(config.get("FLACSTREAM_DATA_DIR", "/data")), {})
    if "emptyDir" not in data:
        errors.append("the data directory is not an emptyDir (no per-pod volumes)")
    elif quantity(data["emptyDir"].get("sizeLimit", "0")) < upload:
        errors.append(f"the data emptyDir ({data['emptyDir'].get('sizeLimit')}) cannot hold one upload ({upload} bytes)")
    if "volumeClaimTemplates" in workload["spec"] or any("persistentVolumeClaim" in v for v in volumes.values()):
        errors.append("the pods have a per-pod volume claim")

    if "Service" in by_kind and "Gateway" in by_kind:
        check_routes(by_kind, by_kind["Service"][0], config, errors)

    check_auth(container, pod, config, auth_example, errors)

    env = {e["name"]: e for e in container.get("env", [])}
    secrets = [s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s]
    if secrets:
        check_scaled(container, env, workload, by_kind, config, errors)
        if secret_example:
            check_secret_example(secret_example, secrets, by_kind, errors)
    else:
        if "FLACSTREAM_DATABASE_URL" in config:
            errors.append("FLACSTREAM_DATABASE_URL is in the ConfigMap; it belongs in a Secret")
        if workload["spec"].get("replicas", 1) != 1 or "HorizontalPodAutoscaler" in by_kind:
            errors.append("embedded mode (no Secret with FLACSTREAM_DATABASE_URL) must run exactly one pod and no HPA")
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret-example", help="the example Secret a scaled render reads")
    parser.add_argument("--auth-secret-example", help="the example auth Secret every render mounts")
    parser.add_argument("rendered", nargs="+")
    args = parser.parse_args()
    failed = False
    for path in args.rendered:
        errors = check(path, args.secret_example, args.auth_secret_example)
        for e in errors:
            print(f"FAIL {path}: {e}")
        if not errors:
            print(f"ok   {path}")
        failed |= bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
