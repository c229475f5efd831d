#!/usr/bin/env bash
# The API contract tests, for CI:
#
#   tests/api/run.sh http://127.0.0.1:8080/
#
# Installs the package (npm ci from the lock file, bounded by
# FLACSTREAM_NPM_TIMEOUT seconds, 300 by default) and runs every test file
# with `node --test` and TAP output on stdout, against the server at the
# given URL (which must be running). Without a URL the checks that need a
# server are skipped ("SKIPPED: FLACSTREAM_URL unset") and the offline ones
# (docs/asyncapi.yaml parsed, its examples against its schemas) still run.
# The whole test run is bounded by FLACSTREAM_API_TEST_TIMEOUT seconds (300).
#
# Exit status: 0 all passed (or skipped), 1 a test failed, 2 usage, 3 the
# install failed or timed out. Environment passed on to the tests:
# FLACSTREAM_API_KEY (a credential for a server with --auth),
# FLACSTREAM_OPENAPI (check this file or URL instead of <url>openapi.json).
#
# The OpenAPI document alone can be checked with
#   node tests/api/validate-openapi.mjs <file-or-url>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ "$#" -gt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  echo "usage: tests/api/run.sh [<server-url>]" >&2
  exit 2
fi
url="${1:-}"
if [ -n "$url" ]; then
  case "$url" in
    http://*|https://*) ;;
    *) echo "run.sh: the server URL must start with http:// or https://, got $url" >&2; exit 2 ;;
  esac
  # The tests join paths onto it: make it end with one slash.
  url="${url%/}/"
fi

command -v node >/dev/null 2>&1 || { echo "run.sh: node is not installed (Node.js 20 or later)" >&2; exit 3; }
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "run.sh: Node.js 20 or later is needed, found $(node --version)" >&2
  exit 3
fi

cd "$here"
if ! timeout "${FLACSTREAM_NPM_TIMEOUT:-300}" npm ci --no-audit --no-fund --loglevel=error >&2; then
  echo "run.sh: npm ci failed or timed out" >&2
  exit 3
fi

status=0
FLACSTREAM_URL="$url" timeout "${FLACSTREAM_API_TEST_TIMEOUT:-300}" \
  node --test --test-reporter=tap *.test.mjs || status=$?
if [ "$status" -ne 0 ]; then
  echo "run.sh: tests failed (status $status)" >&2
  exit 1
fi
