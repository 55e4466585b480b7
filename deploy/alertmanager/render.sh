#!/bin/sh
# Fill alertmanager.yml's ${VAR} receivers from the environment, then run the command.
# POSIX sh and sed only: the prom/alertmanager image is busybox, without envsubst.
# Usage: render.sh /bin/alertmanager --config.file=/tmp/alertmanager.yml ...
set -eu
template="${ALERTMANAGER_TEMPLATE:-/etc/alertmanager/alertmanager.yml}"
out="${ALERTMANAGER_CONFIG:-/tmp/alertmanager.yml}"
script=""
for name in MAILCHAT_ALERT_PAGER_WEBHOOK_URL MAILCHAT_ALERT_TICKET_WEBHOOK_URL; do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    echo "render.sh: $name is not set" >&2
    exit 64
  fi
  # Escape what sed's replacement treats specially (\ & and the | delimiter).
  escaped=$(printf '%s' "$value" | sed -e 's/[\\&|]/\\&/g')
  script="$script -e s|\${$name}|$escaped|g"
done
# shellcheck disable=SC2086
sed $script "$template" > "$out"
exec "$@"
