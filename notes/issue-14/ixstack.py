import subprocess, sys, time, collections
pid, n = sys.argv[1], int(sys.argv[2])
c = collections.Counter()
for _ in range(n):
    out = subprocess.run(["/usr/lib/jvm/temurin-25-jdk-amd64/bin/jstack", pid], capture_output=True, text=True).stdout
    for block in out.split("\n\n"):
        if '"neo4j.IndexUpdating' not in block: continue
        frames = [l.strip()[3:].split("(")[0] for l in block.splitlines() if l.strip().startswith("at ")]
        interesting = [f for f in frames if "lucene" in f or "neo4j" in f][:8]
        c[" <- ".join(x.split(".")[-2]+"."+x.split(".")[-1] for x in interesting)] += 1
    time.sleep(0.2)
for k, v in c.most_common(10): print(v, k)
