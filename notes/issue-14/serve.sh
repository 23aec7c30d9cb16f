#!/usr/bin/env bash
# usage: serve.sh BINARY PORT  (fresh data dir, Neo4j on 27687)
set -e
bin=$1; port=$2
rm -rf /tmp/perf/data; mkdir -p /tmp/perf/data
AETHER_STORE=neo4j AETHER_NEO4J_URI=bolt://127.0.0.1:27687 AETHER_NEO4J_PASSWORD=perf-password \
AETHER_DATA_DIR=/tmp/perf/data AETHER_ADMIN_PASSWORD=bench-admin-password AETHER_LOG_LEVEL=warn \
AETHER_RATE_LIMIT_PER_USER=0 AETHER_RATE_LIMIT_PER_IP=0 AETHER_ACCESS_TOKEN_TTL_SECS=3600 \
AETHER_RUN_WORKERS=${RUN_WORKERS:-true} \
"$bin" serve --listen 127.0.0.1:$port > /tmp/perf/server.out 2>&1 &
echo $! > /tmp/perf/server.pid
until curl -fsS http://127.0.0.1:$port/ready >/dev/null 2>&1; do sleep 0.2; done
curl -fsS -d grant_type=password -d username=admin -d password=bench-admin-password http://127.0.0.1:$port/api/v1/auth/token | python3 -c "import json,sys; print(json.load(sys.stdin)['access_token'])" > /tmp/perf/token
echo "server pid $(cat /tmp/perf/server.pid) ready"
