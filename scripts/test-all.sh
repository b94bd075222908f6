#!/usr/bin/env bash
# Runs every test of pay-ivr on a fresh machine: installs the real peers the tests use (SIPp,
# baresip-core with its srtp module and TLS, Redis, tshark, sox, Kamailio, rtpengine, chromium for
# the browser tests, openssl for test certificates), the npm dependencies, then type check, lint,
# build and vitest (a parallel unit project beside a serial end-to-end project: vitest.config.ts).
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
command -v rtpengine >/dev/null || need+=(rtpengine-daemon)
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

# The unit project binds ephemeral ports while the end-to-end project binds fixed ones below 54000:
# keep the kernel's ephemeral range above them (test/support/port-guard.ts).
if [ "$(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null | tr -s '\t ' ' ')" != "54000 60999" ]; then
  if ! { echo "54000 60999" > /proc/sys/net/ipv4/ip_local_port_range; } 2>/dev/null; then
    echo "cannot set net.ipv4.ip_local_port_range to 54000 60999 (run as root): unit and end-to-end tests would share ports" >&2
    exit 1
  fi
fi

npm ci --no-audit --no-fund
npm run typecheck
npm run lint
npm run build
bash scripts/test-lanes.sh "$@"
