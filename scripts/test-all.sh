#!/usr/bin/env bash
# Runs every test of pay-ivr on a fresh machine: installs the real peers the tests use (SIPp,
# baresip-core with its srtp module and TLS, Redis, tshark, sox, Kamailio, chromium for the reports page test, openssl for test certificates), the npm dependencies, then type check, lint, build and vitest.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v sipp >/dev/null || need+=(sip-tester)
command -v baresip >/dev/null || need+=(baresip-core)
command -v redis-server >/dev/null || need+=(redis-server)
command -v tshark >/dev/null || need+=(tshark)
command -v sox >/dev/null || need+=(sox)
command -v openssl >/dev/null || need+=(openssl)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v kamailio >/dev/null || need+=(kamailio)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing system packages: ${need[*]} (run as root or install them)" >&2
    exit 1
  fi
fi

npm ci --no-audit --no-fund
npm run typecheck
npm run lint
npm run build
npx vitest run "$@"
