#!/bin/sh
# redis-server in the foreground, logging to stdout; extra arguments are passed on.
# SIGTERM makes redis save a snapshot (dump.rdb in /data) and exit.
# maxmemory-policy volatile-lru: when REDIS_MAXMEMORY is reached only keys with a TTL
# (the app's cache entries) are evicted, never the workers' job queue.
set -eu
mkdir -p /data
exec redis-server --bind "${REDIS_BIND:-127.0.0.1}" --port "${REDIS_PORT:-6379}" \
    --dir /data --dbfilename dump.rdb --save "${REDIS_SAVE:-30 1}" \
    --maxmemory "${REDIS_MAXMEMORY:-0}" --maxmemory-policy "${REDIS_MAXMEMORY_POLICY:-volatile-lru}" \
    --appendonly no --daemonize no --protected-mode yes --logfile "" "$@"
