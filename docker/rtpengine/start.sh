#!/bin/sh
# rtpengine for the pay-ivr edge role (docs/agent-assist.md, "Operations"): Debian's
# rtpengine-daemon 10.5 in userspace (--table=-1, no kernel module), its control (ng) socket and
# its DTMF event destination on loopback toward pay-ivr, media on the host's address.
#
# What this script never writes, on purpose (each would put card digits somewhere else):
#   --log-facility-dtmf      every key to syslog;   --log-level=7   every key to the log;
#   --dtmf-log-ng-tcp        keys over the TCP control protocol;   --recording-*   audio to disk.
# It takes no arguments: every setting comes from the environment, and the checks below hold.
set -eu

fail() {
  echo "rtpengine-start: $1" >&2
  exit 64
}

[ $# -eq 0 ] || fail "takes no arguments (settings come from the environment: docker-compose.edge.yml)"

# An IP literal (v4 or v6): rtpengine binds it and writes it in the SDP.
is_ip() {
  case "$1" in
    '' | *[!0-9A-Fa-f:.]*) return 1 ;;
  esac
  return 0
}
# host:port with an IPv4 host (the loopback sockets toward pay-ivr).
is_endpoint() {
  case "$1" in
    *:*[!0-9]* | *:) return 1 ;;
  esac
  is_ip "${1%:*}"
}
is_port() {
  case "$1" in
    '' | *[!0-9]*) return 1 ;;
  esac
  [ "$1" -ge 1024 ] && [ "$1" -le 65535 ]
}

ADDRESS="${RTPENGINE_ADDRESS:-}"
is_ip "$ADDRESS" || fail "RTPENGINE_ADDRESS must be this host's IP address for media (got '$ADDRESS')"
INTERFACE="$ADDRESS"
if [ -n "${PUBLIC_IP:-}" ]; then
  is_ip "$PUBLIC_IP" || fail "PUBLIC_IP must be an IP address (got '$PUBLIC_IP')"
  # Bound on ADDRESS, advertised in the SDP as PUBLIC_IP (NAT).
  INTERFACE="$ADDRESS!$PUBLIC_IP"
fi

PORT_MIN="${RTPENGINE_PORT_MIN:-30000}"
PORT_MAX="${RTPENGINE_PORT_MAX:-40000}"
is_port "$PORT_MIN" || fail "RTPENGINE_PORT_MIN must be a port 1024-65535 (got '$PORT_MIN')"
is_port "$PORT_MAX" || fail "RTPENGINE_PORT_MAX must be a port 1024-65535 (got '$PORT_MAX')"
[ "$PORT_MIN" -lt "$PORT_MAX" ] || fail "RTPENGINE_PORT_MIN must be below RTPENGINE_PORT_MAX"

NG="${RTPENGINE_NG:-127.0.0.1:22222}"
DTMF_DEST="${RTPENGINE_DTMF_DEST:-127.0.0.1:22223}"
CLI="${RTPENGINE_CLI:-127.0.0.1:22224}"
for e in "$NG" "$DTMF_DEST" "$CLI"; do
  is_endpoint "$e" || fail "RTPENGINE_NG, RTPENGINE_DTMF_DEST and RTPENGINE_CLI must be address:port (got '$e')"
done

# At 7 (debug) rtpengine logs every key it sees, so card digits during a capture.
LOG_LEVEL="${RTPENGINE_LOG_LEVEL:-6}"
case "$LOG_LEVEL" in
  [0-6]) ;;
  *) fail "RTPENGINE_LOG_LEVEL must be 0-6 (at 7 rtpengine writes every key, so card digits, to its log)" ;;
esac

exec rtpengine \
  --config-file=none \
  --table=-1 \
  --foreground \
  --log-stderr \
  --log-level="$LOG_LEVEL" \
  --interface="$INTERFACE" \
  --port-min="$PORT_MIN" \
  --port-max="$PORT_MAX" \
  --listen-ng="$NG" \
  --listen-cli="$CLI" \
  --dtmf-log-dest="$DTMF_DEST" \
  --timeout=60 \
  --silent-timeout=3600
