#!/usr/bin/env python3
"""Checks the Grafana dashboard and the Prometheus alert rules against the
metrics the service exports, without Grafana or Prometheus:

* the dashboard is valid JSON with the fields a Grafana dashboard needs
  (title, uid, schemaVersion, time, panels, templating, annotations), unique
  panel ids, grid positions inside the 24 columns that do not overlap, each
  query with a refId unique in its panel, every panel and query on the
  `datasource` variable, and every `$variable` it uses defined;
* the rules file has groups of alerts, each with a `severity` label and a
  `summary`, a `description` and a `runbook` that names a heading of
  docs/operations.md;
* every metric name in the dashboard's and the rules' PromQL is one the
  service exports: the `flacstream_*` names declared in
  actors/src/metrics.rs and src/metrics.rs (a histogram only with its
  `_bucket`, `_sum` or `_count` series), the process_* names and
  flacstream_build_info (the standard process collector and the build info
  gauge), or one of KUBE_STATE_METRICS. A label matched on a flacstream
  metric must be one of its labels or one the scrape adds.

* with --emit-rules FILE: writes every dashboard query, its variables given
  sample values, as a recording rule to FILE, so that `promtool check rules
  FILE` parses the panels' PromQL too;
* with --sizing RENDERED.yaml (the production render): the thresholds tied
  to the pod's sizing follow it. FlacstreamSessionsNearCap is at 90 % of
  FLACSTREAM_MAX_SESSIONS, FlacstreamCpuSaturated and
  FlacstreamMemoryNearLimit at 90 % of the container's CPU and memory
  limits, and the dashboard's max_sessions variable defaults to the cap.

A renamed metric therefore fails this check until the dashboard and the rules
follow. Prints "ok"/"FAIL" lines; exit 0 if all hold, else 1.

Usage: check_monitoring.py [--metrics-source FILE]... [--dashboard FILE]
                           [--rules FILE] [--runbooks FILE] [--sizing RENDERED.yaml]
                           [--emit-rules FILE]
"""

import argparse
import json
import re
import sys

import yaml

METRICS_SOURCES = ["actors/src/metrics.rs", "src/metrics.rs"]
DASHBOARD = "deploy/grafana/flacstream-dashboard.json"
RULES = "deploy/prometheus/alerts.yaml"
RUNBOOKS = "docs/operations.md"

# Exported by every build, whether or not their names are constants in the
# metrics modules: the process collector's standard series and the build
# info gauge.
PROCESS_PREFIX = "process_"
ALWAYS_EXPORTED = {"flacstream_build_info"}
# From kube-state-metrics, not from flacstream: allowed by name.
KUBE_STATE_METRICS = {"kube_pod_container_status_restarts_total"}
# Labels the scrape adds to every series (kubernetes-pods job, PodMonitor).
SCRAPE_LABELS = {"namespace", "pod", "instance", "job", "container", "service", "endpoint"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Grafana's own variables.
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s",
                    "__range_ms", "__dashboard", "__from", "__to", "__name", "__org", "__user",
                    "__timeFilter", "timeFilter"}
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                   "unless", "bool", "offset", "inf", "nan", "atan2"}
DASHBOARD_FIELDS = {"title": str, "uid": str, "schemaVersion": int, "time": dict, "panels": list,
                    "templating": dict, "annotations": dict, "editable": bool, "tags": list}
GRID_COLUMNS = 24
# Share of the pod's cap or limit at which the saturation alerts fire.
SATURATION_SHARE = 0.9
# Sample values of the dashboard's variables, for --emit-rules.
SAMPLE_VALUES = {"namespace": "flacstream", "pod": "flacstream-.*", "max_sessions": "200",
                 "__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def exported_metrics(paths):
    """{name: (kind or None, set of labels)} from the metrics modules."""
    consts, kinds, labels = {}, {}, {}
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            texts.append(f.read())
    for text in texts:
        for name, value in re.findall(r'pub const (\w+): &str = "([^"]*)";', text):
            consts[name] = value
    for text in texts:
        for const, kind in re.findall(r"metric\(\s*(\w+),\s*Kind::(\w+)", text):
            if const in consts:
                kinds[consts[const]] = kind
        for body, const in re.findall(r"Metric\s*\{([^{}]*?)\.\.metric\(\s*(\w+)", text):
            m = re.search(r"labels:\s*&\[([^\]]*)\]", body)
            if m and const in consts:
                labels[consts[const]] = {consts.get(c.strip(), c.strip().strip('"'))
                                         for c in m.group(1).split(",") if c.strip()}
        # Names written as literals in the recording macros.
        for literal in re.findall(r'(?:counter|gauge|histogram)!\(\s*"(\w+)"', text):
            consts.setdefault(literal, literal)
    names = {v for v in consts.values() if v.startswith("flacstream_")}
    return {n: (kinds.get(n), labels.get(n, set())) for n in names}


def strip_promql(expr):
    """The expression with Grafana variables, strings, ranges and matchers
    reduced, so that only names and operators are left."""
    expr = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", "1", expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    return expr


def metric_names(expr):
    """Metric names in one PromQL expression, with the label names matched on
    each ({name: set of labels}); functions, keywords and grouping labels are
    left out."""
    found = {}
    # Matchers first, with their label names, from the expression with only
    # Grafana variables replaced.
    plain = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", "1", expr)
    plain = re.sub(r"\[[^\]]*\]", "", plain)
    for name, body in re.findall(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}", plain):
        if name in PROMQL_KEYWORDS:
            continue
        labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", re.sub(r'"(?:[^"\\]|\\.)*"', '""', body)))
        found.setdefault(name, set()).update(labels)
    s = strip_promql(expr)
    s = re.sub(r"\{[^}]*\}", "", s)
    # Grouping lists hold label names, not metrics.
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)", s):
        name = m.group(1)
        rest = s[m.end():].lstrip()
        if name.lower() in PROMQL_KEYWORDS or rest.startswith("("):
            continue
        if re.fullmatch(r"\d+[smhdwy]", name) or name in ("e", "E"):
            continue
        found.setdefault(name, set())
    return found


def check_name(name, labels, exported, where, errors):
    if name.startswith(PROCESS_PREFIX) or name in ALWAYS_EXPORTED or name in KUBE_STATE_METRICS:
        return
    base, suffix = name, ""
    for s in HISTOGRAM_SUFFIXES:
        if name.endswith(s) and name[: -len(s)] in exported:
            base, suffix = name[: -len(s)], s
    if base not in exported:
        errors.append(f"{where}: {name} is not a metric the service exports")
        return
    kind, own = exported[base]
    if kind == "Histogram" and not suffix:
        errors.append(f"{where}: {name} is a histogram; use {name}_bucket, _sum or _count")
    if suffix and kind not in (None, "Histogram"):
        errors.append(f"{where}: {name}: {base} is a {kind}, not a histogram")
    allowed = own | SCRAPE_LABELS | ({"le"} if suffix == "_bucket" else set())
    for label in labels - allowed:
        errors.append(f"{where}: {name} has no label {label} (its labels: {', '.join(sorted(own)) or 'none'})")


def slug(heading):
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def emit_rules(exprs, path):
    """The dashboard's queries as recording rules, for promtool to parse."""
    def value(m):
        return SAMPLE_VALUES.get(m.group(1) or m.group(2), "1")
    rules = []
    for i, (where, expr) in enumerate(exprs):
        rules.append({"record": f"dashboard:query_{i}", "expr": re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)})
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump({"groups": [{"name": "flacstream-dashboard-queries", "rules": rules}]}, f, sort_keys=False)


def check_dashboard(path, exported, errors, emit=None):
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        errors.append(f"{path}: not valid JSON: {e}")
        return 0
    for field, kind in DASHBOARD_FIELDS.items():
        if not isinstance(dash.get(field), kind):
            errors.append(f"{path}: field {field} missing or not a {kind.__name__}")
    if errors:
        return 0
    if not dash["title"] or not re.fullmatch(r"[\w-]{1,40}", dash["uid"]):
        errors.append(f"{path}: empty title or a uid that is not 1-40 of [A-Za-z0-9_-]")
    variables = {v.get("name"): v for v in dash["templating"].get("list", [])}
    if (variables.get("datasource") or {}).get("type") != "datasource" \
            or variables["datasource"].get("query") != "prometheus":
        errors.append(f"{path}: no `datasource` variable of type datasource for prometheus")
    defined = set(variables) | GRAFANA_BUILTINS

    def uses_variables(text, where):
        for a, b in re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", text):
            if (a or b) not in defined:
                errors.append(f"{where}: ${a or b} is not a dashboard variable")

    def check_datasource(ds, where):
        if not isinstance(ds, dict) or ds.get("uid") != "${datasource}":
            errors.append(f"{where}: datasource is not the ${{datasource}} variable")

    exprs = []
    for v in variables.values():
        if v.get("type") == "query":
            check_datasource(v.get("datasource"), f"variable {v['name']}")
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", q)
            exprs.append((f"variable {v['name']}", m.group(1) if m else q))
    for a in dash["annotations"].get("list", []):
        if a.get("expr"):
            check_datasource(a.get("datasource"), f"annotation {a.get('name')}")
            exprs.append((f"annotation {a.get('name')}", a["expr"]))

    ids, cells = set(), {}
    panels = list(dash["panels"])
    for p in dash["panels"]:
        panels += p.get("panels", [])
    for p in panels:
        where = f"panel {p.get('id')} {p.get('title')!r}"
        pid = p.get("id")
        if not isinstance(pid, int) or pid in ids:
            errors.append(f"{where}: id missing or not unique")
        ids.add(pid)
        for field in ("type", "title", "gridPos"):
            if not p.get(field):
                errors.append(f"{where}: no {field}")
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] + g["w"] > GRID_COLUMNS or g["w"] < 1:
            errors.append(f"{where}: gridPos {g} is not inside {GRID_COLUMNS} columns")
        else:
            for cx in range(g["x"], g["x"] + g["w"]):
                for cy in range(g["y"], g["y"] + g["h"]):
                    if (cx, cy) in cells:
                        errors.append(f"{where} overlaps panel {cells[(cx, cy)]}")
                        break
                    cells[(cx, cy)] = pid
                else:
                    continue
                break
        if p.get("type") == "row":
            continue
        check_datasource(p.get("datasource"), where)
        uses_variables(json.dumps(p), where)
        refs = [t.get("refId") for t in p.get("targets", [])]
        if not refs or len(set(refs)) != len(refs) or None in refs:
            errors.append(f"{where}: no queries, or refIds missing or repeated")
        for t in p.get("targets", []):
            check_datasource(t.get("datasource"), f"{where} query {t.get('refId')}")
            if not t.get("expr"):
                errors.append(f"{where} query {t.get('refId')}: no expr")
            exprs.append((f"{where} query {t.get('refId')}", t.get("expr", "")))
    if emit:
        emit_rules(exprs, emit)
    for where, expr in exprs:
        uses_variables(expr, where)
        for name, labels in metric_names(expr).items():
            check_name(name, labels, exported, where, errors)
    return len(exprs)


def check_rules(path, runbooks_path, exported, errors):
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    try:
        with open(runbooks_path, encoding="utf-8") as f:
            anchors = {slug(m) for m in re.findall(r"^#+\s+(.*)$", f.read(), re.M)}
    except OSError as e:
        errors.append(f"{runbooks_path}: {e}")
        anchors = set()
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not groups:
        errors.append(f"{path}: no groups")
        return 0
    count = 0
    names = set()
    for group in groups:
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            where = f"{path} {name}"
            count += 1
            if rule.get("alert"):
                if name in names:
                    errors.append(f"{where}: alert defined twice")
                names.add(name)
                ann = rule.get("annotations") or {}
                for key in ("summary", "description", "runbook"):
                    if not ann.get(key):
                        errors.append(f"{where}: no {key} annotation")
                if (rule.get("labels") or {}).get("severity") not in ("warning", "critical"):
                    errors.append(f"{where}: severity label is not warning or critical")
                runbook = ann.get("runbook", "")
                page, _, anchor = runbook.partition("#")
                if page != runbooks_path or anchor not in anchors:
                    errors.append(f"{where}: runbook {runbook!r} is not a heading of {runbooks_path}")
            for metric, labels in metric_names(rule.get("expr", "")).items():
                check_name(metric, labels, exported, where, errors)
    return count


def quantity(text):
    m = re.fullmatch(r"([\d.]+)(m|k|M|G|Ki|Mi|Gi)?", str(text).strip())
    if not m:
        raise ValueError(f"not a quantity: {text}")
    return float(m.group(1)) * UNITS[m.group(2) or ""]


def check_sizing(render, rules_path, dashboard_path, errors):
    """The saturation thresholds against the production pod's sizing."""
    with open(render, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    config = {}
    for d in docs:
        if d.get("kind") == "ConfigMap":
            config.update(d.get("data") or {})
    deployments = [d for d in docs if d.get("kind") == "Deployment"]
    if not deployments or "FLACSTREAM_MAX_SESSIONS" not in config:
        errors.append(f"{render}: no Deployment or no FLACSTREAM_MAX_SESSIONS")
        return
    limits = deployments[0]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    cap = int(config["FLACSTREAM_MAX_SESSIONS"])
    want = {
        "FlacstreamSessionsNearCap": (SATURATION_SHARE * cap, f"90 % of FLACSTREAM_MAX_SESSIONS {cap}"),
        "FlacstreamCpuSaturated": (SATURATION_SHARE * quantity(limits["cpu"]), f"90 % of the CPU limit {limits['cpu']}"),
        "FlacstreamMemoryNearLimit": (SATURATION_SHARE * quantity(limits["memory"]),
                                      f"90 % of the memory limit {limits['memory']}"),
    }
    with open(rules_path, encoding="utf-8") as f:
        rules = {r.get("alert"): r for g in yaml.safe_load(f)["groups"] for r in g.get("rules", [])}
    for alert, (value, why) in want.items():
        expr = (rules.get(alert) or {}).get("expr", "")
        m = re.search(r">=?\s*([\d.e+]+)\s*$", expr.strip())
        if not m:
            errors.append(f"{rules_path} {alert}: no `> threshold` at the end of its expr")
        elif abs(float(m.group(1)) - value) > value * 1e-6:  # bytes may be rounded
            errors.append(f"{rules_path} {alert}: threshold {m.group(1)}, want {value:g} ({why}; {render})")
    with open(dashboard_path, encoding="utf-8") as f:
        variables = {v.get("name"): v for v in json.load(f)["templating"]["list"]}
    current = ((variables.get("max_sessions") or {}).get("current") or {}).get("value")
    if str(current) != str(cap):
        errors.append(f"{dashboard_path}: max_sessions defaults to {current}, not FLACSTREAM_MAX_SESSIONS {cap}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics-source", action="append", help="a metrics module (default: both)")
    parser.add_argument("--dashboard", default=DASHBOARD)
    parser.add_argument("--rules", default=RULES)
    parser.add_argument("--runbooks", default=RUNBOOKS)
    parser.add_argument("--emit-rules", help="write the dashboard's queries as recording rules here")
    parser.add_argument("--sizing", help="the production render, for the thresholds tied to sizing")
    args = parser.parse_args()
    exported = exported_metrics(args.metrics_source or METRICS_SOURCES)
    failed = False
    if not exported:
        print("FAIL no flacstream_* metric found in the metrics modules")
        return 1
    for label, run in (("dashboard " + args.dashboard, lambda e: check_dashboard(args.dashboard, exported, e, args.emit_rules)),
                       ("rules " + args.rules, lambda e: check_rules(args.rules, args.runbooks, exported, e))):
        errors = []
        n = run(errors)
        for e in errors:
            print(f"FAIL {e}")
        if not errors:
            print(f"ok   {label}: {n} expressions, every metric among the {len(exported)} exported")
        failed |= bool(errors)
    if args.sizing:
        errors = []
        check_sizing(args.sizing, args.rules, args.dashboard, errors)
        for e in errors:
            print(f"FAIL {e}")
        if not errors:
            print(f"ok   saturation thresholds follow the sizing in {args.sizing}")
        failed |= bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
