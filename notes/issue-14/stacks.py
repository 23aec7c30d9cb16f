# Samples jstack N times; counts the top "interesting" frames of RUNNABLE non-idle threads.
import subprocess, sys, time, collections, re
pid, n = sys.argv[1], int(sys.argv[2])
top = collections.Counter(); deep = collections.Counter(); states = collections.Counter()
for _ in range(n):
    out = subprocess.run(["jstack", pid], capture_output=True, text=True).stdout
    for block in out.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines or not lines[0].startswith('"'): continue
        name = lines[0].split('"')[1]
        st = next((l.split(":",1)[1].strip() for l in lines if "java.lang.Thread.State" in l), "")
        frames = [l.strip()[3:] for l in lines if l.strip().startswith("at ")]
        if not frames: continue
        if st.startswith("RUNNABLE") and any(x in frames[0] for x in ("epoll", "accept", "Net.poll", "socketRead", "EPoll")): continue
        if "neo4j" not in " ".join(frames): continue
        states[(re.sub(r"\d+", "#", name)[:40], st[:30])] += 1
        if st.startswith("RUNNABLE") or "park" in frames[0] or "wait" in frames[0].lower():
            key = " <- ".join(f.split("(")[0].split(".")[-2] + "." + f.split("(")[0].split(".")[-1] for f in frames[:6])
            top[(st[:13], key)] += 1
    time.sleep(0.3)
for k, v in states.most_common(15): print(f"{v/n:5.1f}", k)
print("---")
for k, v in top.most_common(25): print(f"{v/n:5.2f}", k)
