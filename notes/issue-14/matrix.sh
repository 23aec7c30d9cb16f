#!/usr/bin/env bash
# usage: matrix.sh LABEL BINARY "JAVA_OPTS"   (fresh Neo4j + server; 1/4/16 clients of POST /notebooks)
label=$1; bin=$2; jopts=$3
cd /work/wt-perf
kill $(cat /tmp/perf/server.pid) 2>/dev/null; sleep 0.5
export AETHER_RUN_DIR=/tmp/perf-run NEO4J_BOLT_PORT=27687 NEO4J_PASSWORD=perf-password
NEO4J_JAVA_OPTS="$jopts" scripts/services/neo4j start 2>&1 | tail -1
/tmp/perf/serve.sh $bin 28080 >/dev/null
T=$(cat /tmp/perf/token)
cd /tmp/perf
python3 load.py http://127.0.0.1:28080 POST /api/v1/notebooks 16 15 $T '{"name":"warm {n}"}' > /dev/null   # warm-up, ~1000 notebooks
for c in 1 4 16; do
  echo "$label $(python3 load.py http://127.0.0.1:28080 POST /api/v1/notebooks $c 15 $T '{"name":"nb {n}"}')"
done
echo "$label notebooks: $(python3 -c "
import neo4j; d=neo4j.GraphDatabase.driver('bolt://127.0.0.1:27687', auth=('neo4j','perf-password'))
print(d.session().run('MATCH (n:Notebook) RETURN count(n) AS c').single()['c'])")"
