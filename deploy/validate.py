#!/usr/bin/env python3
"""Checks rendered flacstream manifests (kubectl kustomize output) for the
relations deploy/README.md promises, which no schema check would catch:

* every object parses and has apiVersion, kind and metadata.name;
* the workload, Service, ConfigMap, HPA, PDB and Ingress are all there;
* terminationGracePeriodSeconds >= preStop wait + drain grace + stall
  + flush margin (5 s) + 10 s, with the values from the ConfigMap;
* the preStop wait >= drain grace + stall + flush margin, so the hook
  outlasts the drain it starts;
* the HPA's per-pod target is below FLACSTREAM_MAX_SESSIONS;
* the Ingress body limit equals MAX_UPLOAD_BYTES and it hashes on
  $flacstream_session.

Usage: validate.py RENDERED.yaml...   Exit 0 if all hold, else 1.
"""

import re
import sys

import yaml

# src/drain.rs DRAIN_FLUSH_MARGIN_SECONDS.
FLUSH_MARGIN_SECONDS = 5
# What terminationGracePeriodSeconds keeps beyond the sum, for the kubelet.
KILL_MARGIN_SECONDS = 10
DEFAULTS = {"FLACSTREAM_DRAIN_GRACE_SECONDS": 30, "FLACSTREAM_OUTBOUND_STALL_SECONDS": 10}
NGINX_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def nginx_size(text):
    m = re.fullmatch(r"(\d+)([kmg]?)", text.strip().lower())
    if not m:
        raise ValueError(f"not an nginx size: {text}")
    return int(m.group(1)) * NGINX_UNITS[m.group(2)]


def check(path):
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
    workloads = by_kind.get("Deployment", []) + by_kind.get("StatefulSet", [])
    for kind in ("Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress"):
        if kind not in by_kind:
            errors.append(f"no {kind}")
    if len(workloads) != 1:
        errors.append(f"expected one Deployment or StatefulSet, found {len(workloads)}")
        return errors
    config = dict(DEFAULTS)
    for cm in by_kind.get("ConfigMap", []):
        config.update(cm.get("data") or {})
    grace = int(config["FLACSTREAM_DRAIN_GRACE_SECONDS"])
    stall = int(config["FLACSTREAM_OUTBOUND_STALL_SECONDS"])
    drain_takes = grace + stall + FLUSH_MARGIN_SECONDS

    pod = workloads[0]["spec"]["template"]["spec"]
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

    max_sessions = int(config.get("FLACSTREAM_MAX_SESSIONS", 1024))
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        for metric in hpa["spec"].get("metrics", []):
            if metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "flacstream_active_streams":
                target = float(metric["pods"]["target"]["averageValue"])
                if target >= max_sessions:
                    errors.append(f"HPA target {target} streams/pod is not below the cap {max_sessions}")
                break
        else:
            errors.append("the HPA does not scale on flacstream_active_streams")
        if hpa["spec"]["scaleTargetRef"]["kind"] != workloads[0]["kind"]:
            errors.append("the HPA targets another kind than the workload")

    upload = int(config.get("MAX_UPLOAD_BYTES", 2 * 1024**3))
    for ing in by_kind.get("Ingress", []):
        ann = ing["metadata"].get("annotations", {})
        body = nginx_size(ann.get("nginx.ingress.kubernetes.io/proxy-body-size", "1m"))
        if body != upload:
            errors.append(f"Ingress body limit {body} != MAX_UPLOAD_BYTES {upload}")
        if ann.get("nginx.ingress.kubernetes.io/upstream-hash-by") != "$flacstream_session":
            errors.append("the Ingress does not hash on $flacstream_session")
    return errors


def main():
    failed = False
    for path in sys.argv[1:]:
        errors = check(path)
        for e in errors:
            print(f"FAIL {path}: {e}")
        if not errors:
            print(f"ok   {path}")
        failed |= bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
