#!/usr/bin/env python3
"""Renders deploy/local/nginx.conf.in from the files that configure the real
Ingress, so the rehearsal's nginx routes as ingress-nginx would:

* the `http-snippet` of deploy/ingress-nginx/controller-configmap.yaml (the
  `map` that defines the hash key), copied verbatim;
* the nginx.ingress.kubernetes.io/* annotations of deploy/base/ingress.yaml:
  upstream-hash-by, proxy-read-timeout, proxy-send-timeout, proxy-body-size,
  proxy-buffering, proxy-request-buffering;
* the Ingress rule's paths (Exact and Prefix), so only the public endpoints
  are proxied.

    nginx_conf.py --port P --upstream 127.0.0.1:A --upstream ... --prefix DIR --out FILE [--user 'U G']

Standard library only (no PyYAML): both files are read line by line, and the
script fails, naming what it missed, if their shape changes under it. Every
annotation it knows must be present, and no other nginx.ingress.kubernetes.io
annotation may appear, so an annotation added to the Ingress is not silently
left out of the rehearsal.
"""
import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.dirname(HERE)
CONFIGMAP = os.path.join(DEPLOY, 'ingress-nginx', 'controller-configmap.yaml')
INGRESS = os.path.join(DEPLOY, 'base', 'ingress.yaml')
TEMPLATE = os.path.join(HERE, 'nginx.conf.in')

ANNOTATION_PREFIX = 'nginx.ingress.kubernetes.io/'
# Annotation -> template placeholder, and how its value becomes nginx syntax.
ANNOTATIONS = {
    'upstream-hash-by': ('HASH_BY', lambda v: v),
    'proxy-read-timeout': ('READ_TIMEOUT', lambda v: f'{int(v)}s'),
    'proxy-send-timeout': ('SEND_TIMEOUT', lambda v: f'{int(v)}s'),
    'proxy-body-size': ('BODY_SIZE', lambda v: v),
    'proxy-buffering': ('BUFFERING', lambda v: {'on': 'on', 'off': 'off'}[v]),
    'proxy-request-buffering': ('REQUEST_BUFFERING', lambda v: {'on': 'on', 'off': 'off'}[v]),
}


def fail(msg):
    sys.exit(f'nginx_conf.py: {msg}')


def http_snippet(path):
    """The block scalar under `http-snippet: |`, dedented, as a list of lines."""
    lines = open(path).read().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r'^(\s*)http-snippet:\s*\|\s*$', line)
        if not m:
            continue
        key_indent = len(m.group(1))
        block = []
        for body in lines[i + 1:]:
            if body.strip() and len(body) - len(body.lstrip()) <= key_indent:
                break
            block.append(body)
        while block and not block[-1].strip():
            block.pop()
        indent = min(len(b) - len(b.lstrip()) for b in block if b.strip())
        return [b[indent:] for b in block]
    fail(f'no `http-snippet: |` block in {path}')


def annotations(path):
    found = {}
    for line in open(path).read().splitlines():
        m = re.match(r'^\s*' + re.escape(ANNOTATION_PREFIX) + r'([a-z0-9-]+):\s*"?([^"#]*?)"?\s*(#.*)?$', line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    unknown = sorted(set(found) - set(ANNOTATIONS))
    missing = sorted(set(ANNOTATIONS) - set(found))
    if unknown:
        fail(f'{path} has annotations the rehearsal does not render: {", ".join(unknown)} '
             f'(teach deploy/local/nginx_conf.py what they mean)')
    if missing:
        fail(f'{path} lacks annotations the rehearsal expects: {", ".join(missing)}')
    return found


def paths(path):
    """(path, pathType) pairs of the Ingress rules, in order."""
    out = []
    current = None
    for line in open(path).read().splitlines():
        m = re.match(r'^\s*-\s*path:\s*(\S+)\s*$', line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r'^\s*pathType:\s*(\S+)\s*$', line)
        if m and current is not None:
            out.append((current, m.group(1)))
            current = None
    if not out:
        fail(f'no paths found in {path}')
    return out


def locations(rules):
    out = []
    for p, kind in rules:
        if kind == 'Exact':
            out.append(f'        location = {p} {{ proxy_pass http://flacstream; }}')
        elif kind == 'Prefix':
            # Prefix matches whole path elements: /api and /api/..., not /apix.
            out.append(f'        location = {p} {{ proxy_pass http://flacstream; }}')
            if p != '/':
                out.append(f'        location {p.rstrip("/")}/ {{ proxy_pass http://flacstream; }}')
        else:
            fail(f'pathType {kind} of {p} is not rendered')
    return '\n'.join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--upstream', action='append', required=True, help='host:port of a replica')
    ap.add_argument('--prefix', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--user', help='`user` and group for the workers when nginx starts as root')
    args = ap.parse_args()

    snippet = http_snippet(CONFIGMAP)
    values = {name: conv(annotations(INGRESS)[key]) for key, (name, conv) in ANNOTATIONS.items()}
    key = values['HASH_BY']
    if not any(re.search(r'\bmap\b.*\s' + re.escape(key) + r'\s*\{', l) for l in snippet):
        fail(f'the http-snippet defines no `map … {key}` (upstream-hash-by names it)')
    values.update({
        'HTTP_SNIPPET': '\n'.join(('    ' + l) if l else '' for l in snippet),
        'SERVERS': '\n'.join(f'        server {u} max_fails=0;' for u in args.upstream),
        'LOCATIONS': locations(paths(INGRESS)),
        'PORT': str(args.port),
        'USER': f'user {args.user};' if args.user else '# (not started as root: no `user`)',
        'PREFIX': os.path.abspath(args.prefix),
    })
    text = open(TEMPLATE).read()
    for name, value in values.items():
        text = text.replace(f'@{name}@', value)
    left = sorted(set(re.findall(r'@([A-Z_]+)@', text)))
    if left:
        fail(f'placeholders left unrendered: {", ".join(left)}')
    with open(args.out, 'w') as f:
        f.write(text)


if __name__ == '__main__':
    main()
