#!/usr/bin/env python3
"""bench/quiet.py LIMIT_PCT LIMIT_S PID... -- wait until the processes that are not
the bench's own (the PIDs given and their descendants) use less than LIMIT_PCT % of
one core over one second, or LIMIT_S seconds have passed. Prints
"<seconds waited> <other CPU % in the last second>". The machine may be shared with
other work; this keeps the runs from starting in the middle of someone's burst."""
import os
import sys
import time

limit_pct, limit_s = float(sys.argv[1]), float(sys.argv[2])
mine = {int(p) for p in sys.argv[3:] if p}
mine.add(os.getpid())
clk = os.sysconf("SC_CLK_TCK")


def busy_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]) - v[3] - v[4]


def bench_ticks():
    kids, stat = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(b")") + 2:].split()
        stat[int(d)] = int(fields[11]) + int(fields[12])
        kids.setdefault(int(fields[1]), []).append(int(d))
    todo, total = list(mine), 0
    while todo:
        p = todo.pop()
        total += stat.get(p, 0)
        todo.extend(kids.get(p, ()))
    return total


t0 = time.monotonic()
while True:
    b0, m0 = busy_ticks(), bench_ticks()
    time.sleep(1.0)
    b1, m1 = busy_ticks(), bench_ticks()
    other = max(0.0, 100.0 * ((b1 - b0) - (m1 - m0)) / clk)
    if other < limit_pct or time.monotonic() - t0 >= limit_s:
        print(int(time.monotonic() - t0 - 1.0 + 0.5), int(other))
        break
