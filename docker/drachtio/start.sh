#!/bin/sh
# Starts drachtio-server with the mounted configuration and pay-ivr's SIP contacts:
#   sip:*:5060;transport=udp,tcp    always
#   sip:*:5061;transport=tls        unless SIP_TLS=off: Genesys BYOC over TLS 1.2; certificate and
#                                   key mounted at /etc/drachtio/tls (drachtio.conf.xml <tls>)
# The contacts are given here rather than in drachtio.conf.xml: drachtio-server uses the
# command-line contacts instead of the file's, and behind NAT each contact takes its own
# --external-ip right after it (drachtio-server refuses an --external-ip that follows no
# --contact). The secret stays in the environment (DRACHTIO_SECRET), not on the command line
# where `ps` would show it.
set -eu
: "${DRACHTIO_SECRET:?DRACHTIO_SECRET must be set (docker/.env)}"
TLS_DIR="${DRACHTIO_TLS_DIR:-/etc/drachtio/tls}"

set -- drachtio --file /etc/drachtio.conf.xml --contact "sip:*:5060;transport=udp,tcp"
if [ -n "${PUBLIC_IP:-}" ]; then
  set -- "$@" --external-ip "$PUBLIC_IP"
fi
case "${SIP_TLS:-on}" in
  on)
    for f in cert.pem key.pem; do
      if [ ! -r "$TLS_DIR/$f" ]; then
        echo "SIP over TLS needs $TLS_DIR/$f (mount the certificate and key, docs/deploy.md), or set SIP_TLS=off" >&2
        exit 66
      fi
    done
    set -- "$@" --contact "sip:*:5061;transport=tls"
    if [ -n "${PUBLIC_IP:-}" ]; then
      set -- "$@" --external-ip "$PUBLIC_IP"
    fi
    ;;
  off) ;;
  *)
    echo "SIP_TLS must be on or off" >&2
    exit 64
    ;;
esac
exec "$@"
