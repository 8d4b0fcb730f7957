#!/usr/bin/env python3
"""bench/after_load.py PID SECONDS -- sample VmRSS of PID once a second for SECONDS with
no load and print JSON: the samples, VmHWM (the high-water mark of the whole run), the
RSS at the end split into anonymous and file-backed pages, and the first second at which
RSS was under 80 MB (issue 19's target), or null.
bench/after_load.py --describe FILE -- one line about such a JSON file."""
import json
import sys
import time

LIMIT_KB = 80 * 1024


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        return {l.split(":")[0]: int(l.split()[1]) for l in f if l.startswith(("VmRSS", "VmHWM", "RssAnon", "RssFile"))}


def sample(pid, seconds):
    t0, samples = time.monotonic(), []
    while time.monotonic() - t0 < seconds:
        samples.append([round(time.monotonic() - t0, 1), status(pid)["VmRSS"]])
        time.sleep(1)
    end = status(pid)
    below = next((t for t, kb in samples if kb < LIMIT_KB), None)
    return {"samples_s_kb": samples, "hwm_kb": end["VmHWM"], "rss_end_kb": end["VmRSS"], "anon_end_kb": end["RssAnon"],
            "file_end_kb": end["RssFile"], "first_below_80mb_s": below, "seconds": seconds}


def describe(a):
    below = "never" if a["first_below_80mb_s"] is None else f"after {a['first_below_80mb_s']:.0f} s"
    return (f"VmRSS {a['rss_end_kb'] / 1024:.1f} MB after {a['seconds']} s (anon {a['anon_end_kb'] / 1024:.1f}, "
            f"file {a['file_end_kb'] / 1024:.1f}); under 80 MB {below}; VmHWM over the run {a['hwm_kb'] / 1024:.1f} MB")


if __name__ == "__main__":
    if sys.argv[1] == "--describe":
        with open(sys.argv[2]) as f:
            print(describe(json.load(f)))
    else:
        json.dump(sample(sys.argv[1], float(sys.argv[2])), sys.stdout)
