#!/usr/bin/env python3
"""bench/cpuprofile.py FILE.cpuprofile [N] -- where the time goes in a `node --cpu-prof`
profile (e.g. from `npm run bench -- --cpu-prof`): the N functions with the most self
time, and the N with the most inclusive (self + callees) time, as % of all samples.
Functions are shown as name file:line (file relative to the repo when it is in it)."""
import json
import os
import sys
from collections import defaultdict

path = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
with open(path) as f:
    prof = json.load(f)
nodes = {n["id"]: n for n in prof["nodes"]}
parent = {}
for n in prof["nodes"]:
    for c in n.get("children", []):
        parent[c] = n["id"]
# time per sample: the delta that follows it
samples, deltas = prof.get("samples", []), prof.get("timeDeltas", [])
weight = defaultdict(float)
for i, sid in enumerate(samples):
    weight[sid] += deltas[i + 1] / 1000.0 if i + 1 < len(deltas) else 0.0
total = sum(weight.values()) or 1.0
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def label(n):
    cf = n["callFrame"]
    url = cf.get("url", "").replace("file://", "")
    if url.startswith(repo):
        url = url[len(repo) + 1:]
    name = cf.get("functionName") or "(anonymous)"
    return f"{name} {url}:{cf.get('lineNumber', -1) + 1}" if url else name


self_t = defaultdict(float)
incl_t = defaultdict(float)
for sid, w in weight.items():
    self_t[label(nodes[sid])] += w
    seen = set()
    nid = sid
    while nid is not None:
        lab = label(nodes[nid])
        if lab not in seen:
            incl_t[lab] += w
            seen.add(lab)
        nid = parent.get(nid)
busy = total - self_t.get("(idle)", 0.0)
print(f"{path}: {total:.0f} ms sampled, {busy:.0f} ms not idle ({100 * busy / total:.1f} %)")
print(f"\nself time (% of non-idle), top {top}:")
for lab, t in sorted(self_t.items(), key=lambda kv: -kv[1])[:top]:
    if lab == "(idle)":
        continue
    print(f"  {100 * t / busy:5.1f} %  {t:8.1f} ms  {lab}")
print(f"\ninclusive time (% of non-idle), top {top}:")
for lab, t in sorted(incl_t.items(), key=lambda kv: -kv[1])[:top]:
    if lab in ("(root)", "(idle)"):
        continue
    print(f"  {100 * t / busy:5.1f} %  {t:8.1f} ms  {lab}")


def callers(name, depth=4):
    """Self time of functions called `name`, split by their caller chain (depth frames)."""
    split = defaultdict(float)
    for sid, w in weight.items():
        n = nodes[sid]
        if (n["callFrame"].get("functionName") or "(anonymous)") != name:
            continue
        chain, nid = [], parent.get(sid)
        while nid is not None and len(chain) < depth:
            lab = label(nodes[nid])
            if not lab.startswith("node:") and " node:" not in lab:
                chain.append(lab.split(" ")[0] + " " + lab.split(" ")[-1].split("/")[-1])
            nid = parent.get(nid)
        split[" <- ".join(chain)] += w
    print(f"\n{name}: self time by caller chain (% of non-idle):")
    for k, t in sorted(split.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {100 * t / busy:5.1f} %  {k}")


for name in sys.argv[3:]:
    callers(name)
