#!/bin/sh
# Starts drachtio-server with the mounted configuration; adds --external-ip when PUBLIC_IP is
# set (the address Genesys sees when the host is behind NAT). The secret stays in the
# environment (DRACHTIO_SECRET), not on the command line where `ps` would show it.
set -eu
: "${DRACHTIO_SECRET:?DRACHTIO_SECRET must be set (docker/.env)}"
set -- drachtio --file /etc/drachtio.conf.xml
if [ -n "${PUBLIC_IP:-}" ]; then
  set -- "$@" --external-ip "$PUBLIC_IP"
fi
exec "$@"
