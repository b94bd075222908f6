#!/bin/sh
# FreeSWITCH (drachtio/drachtio-freeswitch-mrf image) with pay-ivr's configuration.
# Replaces the image entrypoint, which rewrites the event-socket ACL to allow every address.
# Copies the files mounted at /etc/pay-ivr/freeswitch over the image's configuration, fills in
# the secrets and addresses from the environment, and runs FreeSWITCH in the foreground.
set -eu
: "${FREESWITCH_SECRET:?FREESWITCH_SECRET must be set (docker/.env)}"
case "$FREESWITCH_SECRET" in
  *[!A-Za-z0-9._~+=-]*) echo "FREESWITCH_SECRET may only use A-Z a-z 0-9 . _ ~ + = -" >&2; exit 64 ;;
esac
SRC="${PAYIVR_FS_CONF_SRC:-/etc/pay-ivr/freeswitch}"
CONF="${PAYIVR_FS_CONF_DIR:-/usr/local/freeswitch/conf}"
RTP_PORT_MIN="${RTP_PORT_MIN:-20000}"
RTP_PORT_MAX="${RTP_PORT_MAX:-30000}"
# Event socket and drachtio_mrf SIP ports: the defaults of the shipped files; a second FreeSWITCH
# on the same host (docker-compose.fleet.yml) needs other ones.
ESL_PORT="${ESL_PORT:-8021}"
MRF_SIP_PORT="${MRF_SIP_PORT:-5080}"
case "$ESL_PORT$MRF_SIP_PORT" in
  *[!0-9]*) echo "ESL_PORT and MRF_SIP_PORT must be port numbers" >&2; exit 64 ;;
esac
# The address written in FreeSWITCH's SDP, i.e. where callers send RTP (public IP behind NAT).
EXTERNAL_RTP_IP="${PUBLIC_IP:-}"
[ -n "$EXTERNAL_RTP_IP" ] || EXTERNAL_RTP_IP='$${local_ip_v4}'
# SRTP uses pay-ivr's words (rtp.srtp): required | optional | off -> FreeSWITCH's rtp_secure_media.
case "${SRTP:-required}" in
  required) SRTP_MODE=mandatory ;;
  optional) SRTP_MODE=optional ;;
  off) SRTP_MODE=forbidden ;;
  *) echo "SRTP must be required, optional or off" >&2; exit 64 ;;
esac

for f in switch.conf.xml event_socket.conf.xml acl.conf.xml console.conf.xml logfile.conf.xml modules.conf.xml; do
  cp "$SRC/autoload_configs/$f" "$CONF/autoload_configs/$f"
done
rm -f "$CONF"/sip_profiles/*.xml "$CONF"/dialplan/*.xml
cp "$SRC"/sip_profiles/*.xml "$CONF/sip_profiles/"
cp "$SRC"/dialplan/*.xml "$CONF/dialplan/"

sed -i \
  -e "s|@FREESWITCH_SECRET@|$FREESWITCH_SECRET|g" \
  -e "s|@RTP_PORT_MIN@|$RTP_PORT_MIN|g" \
  -e "s|@RTP_PORT_MAX@|$RTP_PORT_MAX|g" \
  -e "s|@EXTERNAL_RTP_IP@|$EXTERNAL_RTP_IP|g" \
  -e "s|@SRTP_MODE@|$SRTP_MODE|g" \
  -e "s|name=\"listen-port\" value=\"8021\"|name=\"listen-port\" value=\"$ESL_PORT\"|" \
  -e "s|name=\"sip-port\" value=\"5080\"|name=\"sip-port\" value=\"$MRF_SIP_PORT\"|" \
  "$CONF/autoload_configs/event_socket.conf.xml" \
  "$CONF/autoload_configs/switch.conf.xml" \
  "$CONF"/sip_profiles/*.xml \
  "$CONF"/dialplan/*.xml

exec freeswitch -nonat -nf
