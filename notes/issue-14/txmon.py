import neo4j, time, sys, collections
d = neo4j.GraphDatabase.driver("bolt://127.0.0.1:27687", auth=("neo4j", "perf-password"))
secs = float(sys.argv[1]) if len(sys.argv) > 1 else 10
tot = collections.Counter(); n = 0
end = time.time() + secs
with d.session() as s:
    while time.time() < end:
        rows = s.run("SHOW TRANSACTIONS YIELD status, currentQuery, elapsedTime, waitTime WHERE NOT currentQuery STARTS WITH 'SHOW' RETURN status, currentQuery").data()
        for r in rows:
            tot[(r["status"].split(" ")[0], (r["currentQuery"] or "")[:40])] += 1
        n += 1
        time.sleep(0.2)
for k, v in tot.most_common(12):
    print(f"{v/n:6.2f}", k)
