#!/usr/bin/env python3
"""bench/report.py matrix|scale|scaleout RESULTS_DIR -- the tables of one `npm run bench` run.

matrix: reads RESULTS_DIR/runs/<kind>_c<N>_<client>_<target>_r<round>.json (written
by loadgen.py), prints markdown (webmail table, bulk table, targets of issue 7) and
writes RESULTS_DIR/summary.json.

Figures per row are over the rounds: rate as median (min-max), latencies as the
median of the rounds' p50/p99, errors summed over all rounds (counted over the
whole run of each round, warm-up included), CPU as the median of the rounds'
ms per iteration (per fetch for bulk), RSS the largest VmRSS seen at the end of a
window. Ratios are computed per round (targets measured back to back in the same
round) and shown as median (min-max) over the rounds.

CPU is per process tree from /proc/PID/stat (utime+stime+children) sampled at the
start and end of the measured window: "proxy" is the proxy the row went through,
"Dovecot" the whole Dovecot tree (master, login, auth and imap processes).
"""
import glob
import json
import os
import re
import statistics
import sys

MAX_OTHER = float(os.environ.get("BENCH_MAX_OTHER", "35"))
LABEL = re.compile(r"^(web|bulk)_c(\d+)_(normal|quickack)_(direct|c|ours)_r(\d+)$")
TARGET_NAME = {"direct": "direct Dovecot", "c": "C up-imapproxy", "ours": "imapproxy-ts"}


def read_env(d):
    """env.txt of a run (what run.sh printed about the machine and the processes), or ''."""
    try:
        with open(os.path.join(d, "env.txt")) as f:
            return f.read().strip()
    except OSError:
        return ""


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def fmt(x, nd=1):
    if x is None:
        return "–"
    if isinstance(x, float) and nd == 0:
        return f"{x:.0f}"
    return f"{x:.{nd}f}"


def spread(v, nd=1):
    v = [x for x in v if x is not None]
    if not v:
        return "–"
    if len(v) == 1:
        return fmt(v[0], nd)
    return f"{fmt(statistics.median(v), nd)} ({fmt(min(v), nd)}–{fmt(max(v), nd)})"


def load(d):
    runs = []
    for p in sorted(glob.glob(os.path.join(d, "runs", "*.json"))):
        m = LABEL.match(os.path.basename(p)[:-5])
        if not m:
            continue
        with open(p) as f:
            r = json.load(f)
        r["_kind"], r["_c"], r["_client"], r["_target"], r["_round"] = \
            m.group(1), int(m.group(2)), m.group(3), m.group(4), int(m.group(5))
        runs.append(r)
    return runs


def per_it_ms(r, who):
    """CPU ms per iteration (per fetch in bulk mode) of a watched tree."""
    res = r.get("resources", {}).get(who, {})
    rate = r.get("rate_per_s") or 0
    if "cpu_pct" not in res or rate <= 0:
        return None
    return 10.0 * res["cpu_pct"] / rate


def rss_mb(r, who):
    v = r.get("resources", {}).get(who, {}).get("VmRSS")
    try:
        return int(str(v).split()[0]) / 1024.0
    except (ValueError, IndexError):
        return None


def other_cell(row):
    """Median CPU of processes outside the bench during the windows; † if a round was disturbed."""
    v = [x for x in row["other_cpu_pct"] if x is not None]
    if not v:
        return "–"
    bad = sum(1 for x in v if x > MAX_OTHER)
    return f"{statistics.median(v):.0f}" + (f" †{bad}" if bad else "")


def row_of(runs):
    r0 = runs[0]
    t = r0["_target"]
    proxy = None if t == "direct" else t
    bulk = r0["_kind"] == "bulk"
    out = {
        "kind": r0["_kind"], "c": r0["_c"], "client": r0["_client"], "target": t,
        "rounds": len(runs),
        "rate": [r["rate_per_s"] for r in runs],
        "MB_per_s": [r.get("MB_per_s") for r in runs] if bulk else None,
        "p50_ms": [r["lat_ms"]["p50"] for r in runs],
        "p99_ms": [r["lat_ms"]["p99"] for r in runs],
        "max_ms": [r["lat_ms"]["max"] for r in runs],
        "errors_in_window": sum(r["errors_in_window"] for r in runs),
        "errors_all": sum(sum(r.get("errors", {}).values()) for r in runs),
        "error_kinds": {},
        "reuse_pct": [r.get("xproxyreuse_pct") for r in runs] if not bulk else None,
        "login_p50_ms": [r.get("phase_p50_ms", {}).get("login") for r in runs] if not bulk else None,
        "proxy_cpu_ms": [per_it_ms(r, proxy) for r in runs] if proxy else None,
        "dovecot_cpu_ms": [per_it_ms(r, "dovecot") for r in runs],
        "proxy_rss_mb": max((x for x in (rss_mb(r, proxy) for r in runs) if x is not None), default=None) if proxy else None,
        "loadgen_cpu_pct": [r.get("resources", {}).get("loadgen_cpu_pct") for r in runs],
        "all_cpu_pct": [r.get("resources", {}).get("all_procs_cpu_pct") for r in runs],
        "other_cpu_pct": [r.get("resources", {}).get("other_procs_cpu_pct") for r in runs],
        "ours_loop_run_pct": [r.get("resources", {}).get("ours", {}).get("main_thread_run_pct") for r in runs] if t == "ours" else None,
        "ours_loop_wait_pct": [r.get("resources", {}).get("ours", {}).get("main_thread_runqueue_wait_pct") for r in runs] if t == "ours" else None,
    }
    for r in runs:
        for k, n in r.get("errors", {}).items():
            out["error_kinds"][k] = out["error_kinds"].get(k, 0) + n
    return out


def ratios(groups, kind, c, client, num, den, metric):
    """Per-round ratio num/den of `metric` (rate or MB/s)."""
    a = {r["_round"]: r for r in groups.get((kind, c, client, num), [])}
    b = {r["_round"]: r for r in groups.get((kind, c, client, den), [])}
    out = []
    for k in sorted(set(a) & set(b)):
        x, y = a[k].get(metric) or 0, b[k].get(metric) or 0
        out.append(x / y if y else None)
    return [x for x in out if x is not None]


def matrix(d):
    runs = load(d)
    if not runs:
        sys.exit(f"no runs in {d}/runs")
    groups = {}
    for r in runs:
        groups.setdefault((r["_kind"], r["_c"], r["_client"], r["_target"]), []).append(r)
    order = {"direct": 0, "c": 1, "ours": 2}
    keys = sorted(groups, key=lambda k: (k[0] != "web", k[1], k[2] != "normal", order[k[3]]))
    rows = []
    for k in keys:
        row = row_of(sorted(groups[k], key=lambda r: r["_round"]))
        if k[3] == "ours":
            metric = "MB_per_s" if k[0] == "bulk" else "rate_per_s"
            row["ours_over_c"] = ratios(groups, k[0], k[1], k[2], "ours", "c", metric)
            row["ours_over_direct"] = ratios(groups, k[0], k[1], k[2], "ours", "direct", metric)
        rows.append(row)
    rounds = max(r["_round"] for r in runs)

    env = read_env(d)
    out = []
    w = out.append
    w(f"## imapproxy-ts benchmark: {os.path.basename(os.path.normpath(d))}\n")
    w("```\n" + env + "\n```\n")
    w(f"{rounds} round(s); cells with a range are median (min–max) over the rounds. CPU = ms of CPU time per "
      "iteration (per 5 MiB fetch for bulk) of the proxy process and of the whole Dovecot tree. Errors: all rounds, "
      "warm-up included. RSS: largest VmRSS of the proxy at the end of a window. other % = median CPU (% of one "
      "core) of processes outside the bench during the windows (the machine may be shared); †N = N rounds above "
      f"{MAX_OTHER:.0f} % even after re-runs ({len(glob.glob(os.path.join(d, 'runs', '*.disturbed*.json')))} "
      "disturbed runs were re-run; their results are kept as runs/*.disturbedN.json).\n")
    w("### Webmail: connect, LOGIN, SELECT INBOX, UID FETCH 1:10 (FLAGS RFC822.SIZE ENVELOPE), LOGOUT\n")
    w("| clients | client | target | it/s | p50 ms | p99 ms | errors | reuse % | login p50 ms | proxy CPU ms/it | "
      "Dovecot CPU ms/it | proxy RSS MB | other % | ours/C | ours/direct |")
    w("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        if row["kind"] != "web":
            continue
        w(f"| {row['c']} | {row['client']} | {row['target']} | {spread(row['rate'])} | {fmt(med(row['p50_ms']))} | "
          f"{fmt(med(row['p99_ms']))} | {row['errors_all']} | {fmt(med(row['reuse_pct']))} | {fmt(med(row['login_p50_ms']), 2)} | "
          f"{fmt(med(row['proxy_cpu_ms']) if row['proxy_cpu_ms'] else None, 3)} | {fmt(med(row['dovecot_cpu_ms']), 2)} | "
          f"{fmt(row['proxy_rss_mb'])} | {other_cell(row)} | {spread(row.get('ours_over_c') or [], 2) if row['target'] == 'ours' else ''} | "
          f"{spread(row.get('ours_over_direct') or [], 2) if row['target'] == 'ours' else ''} |")
    if any(r["kind"] == "bulk" for r in rows):
        w("\n### Bulk: logged in once, repeated UID FETCH <5 MiB message> BODY[]\n")
        w("| clients | target | MB/s | fetch p50 ms | fetch p99 ms | errors | proxy CPU ms/fetch | Dovecot CPU ms/fetch | "
          "proxy RSS MB | other % | ours/C | ours/direct |")
        w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            if row["kind"] != "bulk":
                continue
            w(f"| {row['c']} | {row['target']} | {spread(row['MB_per_s'])} | {fmt(med(row['p50_ms']))} | {fmt(med(row['p99_ms']))} | "
              f"{row['errors_all']} | {fmt(med(row['proxy_cpu_ms']) if row['proxy_cpu_ms'] else None, 2)} | "
              f"{fmt(med(row['dovecot_cpu_ms']), 2)} | {fmt(row['proxy_rss_mb'])} | {other_cell(row)} | "
              f"{spread(row.get('ours_over_c') or [], 2) if row['target'] == 'ours' else ''} | "
              f"{spread(row.get('ours_over_direct') or [], 2) if row['target'] == 'ours' else ''} |")
    w("\nMachine load per row (median % of one core; 200 % = both cores): load generator / all processes / "
      "processes other than the generator, Dovecot and the proxies; for ours, its event-loop thread: % of the window "
      "on a CPU and % runnable but waiting for a CPU (/proc/PID/schedstat):\n")
    w("| row | loadgen | all | other | ours loop on CPU | ours loop waiting for CPU |")
    w("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        lr = fmt(med(row["ours_loop_run_pct"])) if row["ours_loop_run_pct"] else ""
        lw = fmt(med(row["ours_loop_wait_pct"])) if row["ours_loop_wait_pct"] else ""
        w(f"| {row['kind']} c={row['c']} {row['client']} {row['target']} | {fmt(med(row['loadgen_cpu_pct']))} | "
          f"{fmt(med(row['all_cpu_pct']))} | {fmt(med(row['other_cpu_pct']))} | {lr} | {lw} |")
    kinds = {f"{row['kind']} c={row['c']} {row['client']} {row['target']}": row["error_kinds"] for row in rows if row["error_kinds"]}
    if kinds:
        w("\nErrors by kind (all rounds):\n")
        for k, v in kinds.items():
            w(f"- {k}: {v}")

    targets = evaluate(rows, read_after_load(d))
    w("\n### Targets (issues 7 and 19)\n")
    w("| target | measured | met |")
    w("|---|---|---|")
    for t in targets:
        w(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    text = "\n".join(out) + "\n"
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump({"rows": rows, "targets": targets, "env": env}, f, indent=2)
    print(text)


def find(rows, kind, c, client, target):
    for r in rows:
        if (r["kind"], r["c"], r["client"], r["target"]) == (kind, c, client, target):
            return r
    return None


# Issue 19's targets (issue 7's, tightened): CPU per page view against C's, bulk against
# direct Dovecot, memory.
CPU_MAX_OVER_C = 0.8
BULK_MIN_OVER_DIRECT = {1: 0.95, 4: 0.85}
RSS_HWM_MAX_MB = 96
RSS_AFTER_MAX_MB = 80


def read_after_load(d):
    """after-load.json (bench/after_load.py) of a run, or None."""
    try:
        with open(os.path.join(d, "after-load.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def evaluate(rows, after=None):
    out = []

    def add(target, measured, met):
        out.append({"target": target, "measured": measured, "met": bool(met)})

    for c in (32, 128):
        o, k = find(rows, "web", c, "normal", "ours"), find(rows, "web", c, "normal", "c")
        if not o or not k:
            continue
        ratio = med(o.get("ours_over_c") or [])
        add(f"webmail c={c}, normal client: it/s ≥ 2× C", f"{fmt(ratio, 2)}× ({spread(o['rate'], 0)} vs {spread(k['rate'], 0)} it/s)",
            ratio is not None and ratio >= 2.0)
        po, pk = med(o["p99_ms"]), med(k["p99_ms"])
        add(f"webmail c={c}, normal client: p99 ≤ C's", f"{fmt(po)} ms vs {fmt(pk)} ms", po is not None and pk is not None and po <= pk)
        add(f"webmail c={c}, normal client: 0 errors", f"{o['errors_all']} (C: {k['errors_all']})", o["errors_all"] == 0)
    for c in sorted({r["c"] for r in rows if r["kind"] == "web"}):
        o = find(rows, "web", c, "quickack", "ours")
        if not o or not o.get("ours_over_c"):
            continue
        ratio = med(o["ours_over_c"])
        add(f"webmail c={c}, quick-ACK client: it/s ≥ 1.0× C", f"{spread(o['ours_over_c'], 2)}×", ratio >= 1.0)
    for c in sorted({r["c"] for r in rows if r["kind"] == "bulk"}):
        o = find(rows, "bulk", c, "normal", "ours")
        if not o or not o.get("ours_over_direct"):
            continue
        ratio = med(o["ours_over_direct"])
        k = find(rows, "bulk", c, "normal", "c")
        kr = f"; C: {fmt(med(k['MB_per_s']) / med(find(rows, 'bulk', c, 'normal', 'direct')['MB_per_s']), 2)}×" if k else ""
        need = BULK_MIN_OVER_DIRECT.get(c, 0.9)
        add(f"bulk c={c}: MB/s ≥ {need}× direct", f"{spread(o['ours_over_direct'], 2)}×{kr}", ratio >= need)
    for client in ("normal", "quickack"):
        for c in sorted({r["c"] for r in rows if r["kind"] == "web"}):
            o, k = find(rows, "web", c, client, "ours"), find(rows, "web", c, client, "c")
            if not o or not k or not o["proxy_cpu_ms"] or not k["proxy_cpu_ms"]:
                continue
            a, b = med(o["proxy_cpu_ms"]), med(k["proxy_cpu_ms"])
            add(f"proxy CPU per (reused) page view, c={c} {client}: ≤ {CPU_MAX_OVER_C}× C's",
                f"{fmt(a / b if a is not None and b else None, 2)}×: {fmt(a, 3)} vs {fmt(b, 3)} ms/it "
                f"(reuse {fmt(med(o['reuse_pct']))} % / {fmt(med(k['reuse_pct']))} %)",
                a is not None and b is not None and a <= CPU_MAX_OVER_C * b)
    # Memory (issue 19): the high-water mark over the whole run, every row included, and
    # what is left a minute after the load (bench/after_load.py).
    peak = max((r["proxy_rss_mb"] for r in rows if r["target"] == "ours" and r["proxy_rss_mb"] is not None), default=None)
    if after is not None:
        hwm = after["hwm_kb"] / 1024
        add(f"proxy RSS high-water over the whole run ≤ {RSS_HWM_MAX_MB} MB",
            f"{fmt(hwm)} MB (largest at the end of a window: {fmt(peak)} MB)", hwm <= RSS_HWM_MAX_MB)
        t = after["first_below_80mb_s"]
        add(f"proxy RSS under {RSS_AFTER_MAX_MB} MB within 60 s after the load",
            f"{'never' if t is None else f'after {t:.0f} s'}; {fmt(after['rss_end_kb'] / 1024)} MB at {after['seconds']:.0f} s",
            t is not None)
    elif peak is not None:
        add(f"proxy RSS at the end of every window ≤ {RSS_HWM_MAX_MB} MB", f"{fmt(peak)} MB", peak <= RSS_HWM_MAX_MB)
    return out


def scale(d):
    with open(os.path.join(d, "runs", "scale.json")) as f:
        r = json.load(f)
    out = []
    w = out.append
    env = read_env(d)
    w(f"## imapproxy-ts scale mode: {os.path.basename(os.path.normpath(d))}\n")
    w("```\n" + env + "\n```\n")
    w(f"{r['connections']} client connections to ours: {r['connections'] - r['logged_in']} left in the pre-auth state "
      f"(greeting read), {r['logged_in']} logged in (LOGIN userK, K = 1..{r['users']}, each holding its own Dovecot "
      f"connection); all held {r['hold_s']} s, then each sends NOOP and must get OK.\n")
    w(f"Opened: {r['preauth_open']} pre-auth + {r['logged_in_open']} logged in; NOOP OK: {r['noop_ok']}; "
      f"errors: {r['errors'] or 'none'}; phases (s): {r['phases_s']}.\n")
    w("RSS is VmRSS from /proc/PID/status (RssAnon = anonymous memory: JS heap, buffers, malloc; RssFile = mapped "
      "files, mostly the node binary). JS heap = V8's own figure from `node --trace-gc`: MB in use after the last GC "
      "before the sample (and committed); no GC is forced, so it can lag the sample.\n")
    w("| moment | RSS MB | RssAnon MB | RssFile MB | JS heap used / committed MB (last GC) |")
    w("|---|---:|---:|---:|---:|")
    names = {"baseline": "idle daemon, before any connection", "preauth_held": f"{r['preauth_open']} pre-auth held",
             "all_held": f"+ {r['logged_in_open']} logged in ({r['preauth_open'] + r['logged_in_open']} total)",
             "after_hold": f"after {r['hold_s']} s holding them", "after_close": "all closed again"}
    for label, snap in r["samples"].items():
        o = snap.get("ours", {})
        h = snap.get("_heap")
        heap = f"{h['heap_used_after_mb']:.1f} / {h['heap_committed_mb']:.1f} ({h['gc']})" if h else "–"
        mb = lambda k: fmt(o[k] / 1024.0) if o.get(k) is not None else "–"  # noqa: E731
        w(f"| {names.get(label, label)} | {mb('VmRSS')} | {mb('RssAnon')} | {mb('RssFile')} | {heap} |")
    peak = r.get("peak_rss_kb_during_hold", {}).get("ours")
    hwm = r["samples"].get("after_hold", {}).get("ours", {}).get("VmHWM")
    total = r["preauth_open"] + r["logged_in_open"]
    held = r["samples"].get("all_held", {}).get("ours", {}).get("VmRSS")
    w("")
    w(f"Peak VmRSS while holding: {fmt(peak / 1024.0) if peak else '–'} MB; VmHWM (high-water mark, opening phase "
      f"included): {fmt(hwm / 1024.0) if hwm else '–'} MB.\n")
    ok = held is not None and total >= r["connections"] and held / 1024.0 < 300 and (hwm or 0) / 1024.0 < 300
    w("| target | measured | met |")
    w("|---|---|---|")
    w(f"| {r['connections']} idle client connections, RSS < 300 MB | {total} held, RSS {fmt(held / 1024.0) if held else '–'} MB "
      f"(high-water {fmt(hwm / 1024.0) if hwm else '–'} MB) | {'yes' if ok else '**no**'} |")
    text = "\n".join(out) + "\n"
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump({"scale": r, "target_met": ok, "env": env}, f, indent=2)
    print(text)


SO_LABEL = re.compile(r"^so_(one|roundrobin|source)_r(\d+)$")
SO_NAME = {"one": "1 instance", "roundrobin": "2 instances, round robin", "source": "2 instances, source hashing"}


def scaleout(d):
    """Two of ours behind HAProxy (bench/run.sh --scale-out): what the balancing does to reuse."""
    rows = {}
    for p in sorted(glob.glob(os.path.join(d, "runs", "so_*.json"))):
        m = SO_LABEL.match(os.path.basename(p)[:-5])
        if m:
            with open(p) as f:
                rows.setdefault(m.group(1), []).append(json.load(f))
    env = read_env(d)
    out = [f"## imapproxy-ts scale-out: {os.path.basename(os.path.normpath(d))}\n", "```\n" + env + "\n```\n",
           "Webmail iterations through one HAProxy (PROXY protocol v2 to ours). Rates median (min-max) over rounds; "
           "CPU in ms per iteration; reuse = share of logins answered [XPROXYREUSE]; other = CPU % of one core used by "
           "processes outside the bench during the windows (median; † rounds over " + f"{MAX_OTHER:.0f} %).\n",
           "| balancing | it/s | p50 ms | p99 ms | errors | reuse % | Dovecot CPU ms/it | ours CPU ms/it (both) | other % |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    summary = {}
    for key in ("one", "roundrobin", "source"):
        runs = rows.get(key)
        if not runs:
            continue
        ours = [sum(x for x in (per_it_ms(r, "ours"), per_it_ms(r, "ours2")) if x is not None) for r in runs]
        row = {
            "rate": [r["rate_per_s"] for r in runs], "p50": [r["lat_ms"]["p50"] for r in runs],
            "p99": [r["lat_ms"]["p99"] for r in runs], "errors": sum(sum(r.get("errors", {}).values()) for r in runs),
            "reuse": [r.get("xproxyreuse_pct") for r in runs], "dovecot": [per_it_ms(r, "dovecot") for r in runs],
            "ours": ours, "other_cpu_pct": [r.get("resources", {}).get("other_procs_cpu_pct") for r in runs],
        }
        summary[key] = row
        out.append(f"| {SO_NAME[key]} | {spread(row['rate'], 0)} | {fmt(med(row['p50']))} | {fmt(med(row['p99']))} | "
                   f"{row['errors']} | {spread(row['reuse'])} | {fmt(med(row['dovecot']), 2)} | {fmt(med(row['ours']), 2)} | "
                   f"{other_cell(row)} |")
    text = "\n".join(out) + "\n"
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump({"scaleout": summary, "env": env}, f, indent=2)
    print(text)


if __name__ == "__main__":
    modes = {"matrix": matrix, "scale": scale, "scaleout": scaleout}
    if len(sys.argv) != 3 or sys.argv[1] not in modes:
        sys.exit(__doc__)
    modes[sys.argv[1]](sys.argv[2])
