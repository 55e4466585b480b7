#!/bin/sh
# The app image's entrypoint: one image, one role per container (web, worker, beat,
# flower, bootstrap), or any command.
#
# Metrics: each container has its own PROMETHEUS_MULTIPROC_DIR (a tmpfs), wiped here before
# the process starts, as prometheus_client's multiprocess mode requires: files of a
# previous run would otherwise add up with this one's.
set -eu

if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  rm -rf "${PROMETHEUS_MULTIPROC_DIR:?}"/*
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi

role="${1:-web}"
case "$role" in
  web)
    exec gunicorn --config deploy/gunicorn.conf.py wsgi:app
    ;;
  worker)
    exec celery -A celery_app worker --loglevel=INFO \
      --queues="${MAILCHAT_WORKER_QUEUES:-search,sync,maintenance,delivery}" \
      --concurrency="${MAILCHAT_WORKER_CONCURRENCY:-2}" \
      --hostname="${MAILCHAT_WORKER_NAME:-worker}@%h"
    ;;
  beat)
    exec celery -A celery_app beat --loglevel=INFO \
      --schedule="${MAILCHAT_DATA_DIR:-/data}/celerybeat-schedule"
    ;;
  flower)
    : "${FLOWER_BASIC_AUTH:?FLOWER_BASIC_AUTH (user:password) is required}"
    exec celery -A celery_app flower --address=0.0.0.0 --port="${MAILCHAT_FLOWER_PORT:-5555}" \
      --basic-auth="$FLOWER_BASIC_AUTH"
    ;;
  bootstrap)
    # Template, first index and write alias; idempotent, run once before web and workers.
    exec flask --app wsgi index bootstrap
    ;;
  *)
    exec "$@"
    ;;
esac
