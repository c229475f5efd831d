#!/usr/bin/env python3
"""Writes prometheusrule.yaml, the Prometheus Operator's form of alerts.yaml:
the same groups under a PrometheusRule's spec. alerts.yaml is the source;
run this after changing it (deploy/check.sh fails while the two differ).

Usage: deploy/prometheus/sync.py [--check]
With --check, writes nothing and exits 1 if prometheusrule.yaml is stale.
"""

import pathlib
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE / "alerts.yaml"
TARGET = HERE / "prometheusrule.yaml"
HEADER = """\
# GENERATED from alerts.yaml by sync.py: edit alerts.yaml, then run
# `python3 deploy/prometheus/sync.py`. deploy/check.sh fails while they differ.
#
# The alert rules of alerts.yaml as a PrometheusRule (Prometheus Operator,
# kube-prometheus-stack). Its Prometheus picks rules by label
# (`ruleSelector`): kube-prometheus-stack's default wants
# `release: <its Helm release>`; add that label in your overlay.
# docs/operations.md explains each alert.
"""


class Dumper(yaml.SafeDumper):
    pass


def _str(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


Dumper.add_representer(str, _str)


def render():
    groups = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "flacstream",
            "labels": {"app.kubernetes.io/name": "flacstream", "app.kubernetes.io/part-of": "flacstream"},
        },
        "spec": {"groups": groups},
    }
    return HEADER + yaml.dump(rule, Dumper=Dumper, sort_keys=False, width=120, allow_unicode=True)


def main():
    text = render()
    if "--check" in sys.argv[1:]:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.name} is stale: run python3 deploy/prometheus/sync.py")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
