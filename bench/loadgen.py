#!/usr/bin/env python3
# Adapted from the team's bench harness (/work/shared/bench/loadgen.py, our own
# code) for imapproxy-ts' `npm run bench`. Changes from that version:
#   * --mode idle: the scale mode (hold many idle pre-auth and logged-in client
#     connections, sample the daemon's memory, check the connections still answer);
#   * --watch also reports RssAnon/RssFile, the user/system split of the watched
#     root process, its main thread's run-queue wait (/proc/PID/schedstat), and
#     the RSS of every watched process that is not named "dovecot".
# The webmail and throughput modes, the CPU accounting and --quickack are unchanged.
"""Closed-loop IMAP load generator (python3 stdlib only, asyncio, raw sockets).

webmail mode (default) -- C workers, each looping until the window ends:
    connect, read greeting, LOGIN userK passK (K random in 1..U), SELECT INBOX,
    UID FETCH 1:10 (FLAGS RFC822.SIZE ENVELOPE), LOGOUT, wait for server EOF, close
  reports iterations/s, p50/p90/p99/max latency per iteration, per-phase p50,
  share of logins answered with [XPROXYREUSE], and errors by kind.

throughput mode (--mode throughput) -- each worker logs in once, SELECTs INBOX,
  finds the big message (UID SEARCH LARGER 1000000) and repeats
  UID FETCH <uid> BODY[] until the window ends; reports MB/s.

Bounded in time: workers stop starting iterations at the end of the window,
in-flight work is cancelled after --op-timeout more seconds, and SIGALRM kills
the process outright if anything still hangs (duration + warmup + 60 s).

Responses are parsed minimally: read lines until the tagged completion line;
a line ending in {n} (or {n+}) is followed by exactly n literal bytes and then
the rest of the line, so literals containing CRLF or '}' are handled.

Optional measurement: --watch NAME=PID (repeatable) samples CPU time of the
process tree rooted at PID (utime+stime+cutime+cstime of PID and all live
descendants) at the start and end of the measured window, and the root's
VmRSS/VmHWM at the end; machine-wide CPU is sampled from /proc/stat.
"""
import argparse
import asyncio
import json
import math
import os
import random
import re
import signal
import socket
import ssl
import sys
import time

CLK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


class ImapError(Exception):
    pass


# --------------------------------------------------------------------------- protocol
async def read_response(reader):
    """Read one logical response (a line plus any literals). Returns bytes
    (first line with literal payloads replaced by nothing) and literal byte count."""
    line = await reader.readuntil(b"\r\n")
    if not line.endswith(b"}\r\n"):
        return line, 0
    head = [line]
    lit = 0
    while line.endswith(b"}\r\n"):
        i = line.rfind(b"{")
        if i < 0:
            break
        num = line[i + 1:-3].rstrip(b"+")
        if not num.isdigit():
            break
        n = int(num)
        lit += n
        if n <= 65536:
            await reader.readexactly(n)
        else:  # big literal: consume in chunks, never build one huge object
            left = n
            while left:
                chunk = await reader.read(min(left, 1 << 20))
                if not chunk:
                    raise asyncio.IncompleteReadError(b"", left)
                left -= len(chunk)
        line = await reader.readuntil(b"\r\n")
        head.append(line)
    return b"".join(head), lit


async def command(reader, writer, tag, text):
    """Send a command, read until the tagged line. Returns (untagged_list, tagged, literal_bytes)."""
    writer.write(b"%s %s\r\n" % (tag, text))
    untagged = []
    lit_total = 0
    prefix = tag + b" "
    while True:
        resp, lit = await read_response(reader)
        lit_total += lit
        if resp.startswith(prefix):
            return untagged, resp, lit_total
        if resp.startswith(b"+"):
            raise ImapError("unexpected continuation")
        untagged.append(resp)


def status_of(tagged, tag):
    return tagged[len(tag) + 1:len(tag) + 4].rstrip()


class QuickAckProtocol(asyncio.StreamReaderProtocol):
    """StreamReaderProtocol that re-arms TCP_QUICKACK after every read, so the
    client ACKs at once instead of delaying ACKs (Linux delayed ACK ~40 ms).
    This removes the Nagle/delayed-ACK stall a server causes when it answers
    with several small writes; use it to separate that effect from CPU cost."""

    def connection_made(self, transport):
        self._qa_sock = transport.get_extra_info("socket")
        super().connection_made(transport)

    def data_received(self, data):
        try:
            self._qa_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except (OSError, AttributeError):
            pass
        super().data_received(data)


def source_addr(args, k):
    # --source-ips N: user K always connects from 127.0.0.(2 + K mod N), like a webmail
    # farm behind a load balancer with sticky sessions (one user, one webmail host);
    # what a source-hashing balancer in front of several proxies sees (scale-out bench).
    if not args.source_ips or k is None:
        return None
    return (f"127.0.0.{2 + k % args.source_ips}", 0)


async def open_conn(args, sslctx, k=None):
    ssl_arg = sslctx if args.tls == "implicit" else None
    sni = args.host if args.tls == "implicit" else None
    local = source_addr(args, k)
    if args.quickack:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20, loop=loop)
        proto = QuickAckProtocol(reader, loop=loop)
        transport, _ = await loop.create_connection(lambda: proto, args.host, args.port,
                                                    ssl=ssl_arg, server_hostname=sni, local_addr=local)
        writer = asyncio.StreamWriter(transport, proto, reader, loop)
    else:
        reader, writer = await asyncio.open_connection(args.host, args.port, ssl=ssl_arg,
                                                       server_hostname=sni, limit=1 << 20, local_addr=local)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    greeting = await reader.readuntil(b"\r\n")
    if not greeting.startswith(b"* OK"):
        raise ImapError("greeting: " + greeting[:40].decode("latin-1").strip())
    if args.tls == "starttls":
        _, t, _ = await command(reader, writer, b"s0", b"STARTTLS")
        if status_of(t, b"s0") != b"OK":
            raise ImapError("STARTTLS refused")
        await writer.start_tls(sslctx, server_hostname=args.host)
    return reader, writer


async def close_after_logout(reader, writer):
    # LOGOUT done: the server closes first; wait briefly for EOF, then close.
    try:
        await asyncio.wait_for(reader.read(), 1.0)
    except (asyncio.TimeoutError, OSError, ssl.SSLError):
        pass
    writer.close()


def abort(writer):
    if writer is not None:
        try:
            writer.transport.abort()
        except Exception:
            pass


# --------------------------------------------------------------------------- stats
class Stats:
    def __init__(self):
        self.ok = 0
        self.ok_total = 0
        self.lat = []
        self.phase = {k: [] for k in ("connect", "login", "select", "fetch", "logout")}
        self.errors = {}
        self.err_in_window = 0
        self.reuse = 0
        self.bytes = 0

    def err(self, kind, in_window):
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if in_window:
            self.err_in_window += 1


def pct(vals, p):
    if not vals:
        return float("nan")
    vals = sorted(vals)
    k = min(len(vals) - 1, max(0, math.ceil(p / 100.0 * len(vals)) - 1))  # nearest-rank
    return vals[k]


def err_kind(e):
    if isinstance(e, ImapError):
        return str(e)
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    if isinstance(e, asyncio.IncompleteReadError):
        return "EOF"
    if isinstance(e, OSError) and e.errno:
        return f"{type(e).__name__}({e.errno})"
    return type(e).__name__


# --------------------------------------------------------------------------- workers
class Clock:
    def __init__(self, warmup, duration):
        self.t0 = time.monotonic()
        self.start = self.t0 + warmup
        self.end = self.start + duration

    def in_window(self, t):
        return self.start <= t <= self.end


async def webmail_worker(wid, args, sslctx, clock, st, rng):
    users = args.users
    while time.monotonic() < clock.end:
        k = rng.randint(1, users)
        user = f"{args.user_prefix}{k}".encode()
        pw = args.password_format.format(n=k).encode()
        t0 = time.monotonic()
        writer = None
        phase = "connect"
        try:
            async with timeout_ctx(args.op_timeout):
                reader, writer = await open_conn(args, sslctx, k)
                t1 = time.monotonic()
                phase = "login"
                unt, tg, _ = await command(reader, writer, b"a1", b"LOGIN " + user + b" " + pw)
                if status_of(tg, b"a1") != b"OK":
                    raise ImapError("LOGIN " + status_of(tg, b"a1").decode())
                reused = any(b"[XPROXYREUSE]" in u for u in unt)
                t2 = time.monotonic()
                phase = "select"
                _, tg, _ = await command(reader, writer, b"a2", b"SELECT INBOX")
                if status_of(tg, b"a2") != b"OK":
                    raise ImapError("SELECT " + status_of(tg, b"a2").decode())
                t3 = time.monotonic()
                phase = "fetch"
                unt, tg, _ = await command(reader, writer, b"a3", b"UID FETCH 1:10 (FLAGS RFC822.SIZE ENVELOPE)")
                if status_of(tg, b"a3") != b"OK":
                    raise ImapError("FETCH " + status_of(tg, b"a3").decode())
                nf = sum(1 for u in unt if b" FETCH (" in u)
                if nf != 10:
                    raise ImapError(f"FETCH returned {nf} messages, expected 10")
                t4 = time.monotonic()
                phase = "logout"
                _, tg, _ = await command(reader, writer, b"a4", b"LOGOUT")
                if status_of(tg, b"a4") != b"OK":
                    raise ImapError("LOGOUT " + status_of(tg, b"a4").decode())
                await close_after_logout(reader, writer)
                writer = None
            t5 = time.monotonic()
        except asyncio.CancelledError:
            abort(writer)
            raise
        except Exception as e:  # noqa: BLE001 - every failure is counted by kind
            abort(writer)
            kind = err_kind(e)
            if not isinstance(e, ImapError):
                kind += " in " + phase
            st.err(kind, clock.in_window(time.monotonic()))
            await asyncio.sleep(0.05)  # don't spin on a refusing server
            continue
        st.ok_total += 1
        if clock.in_window(t5):
            st.ok += 1
            st.lat.append(t5 - t0)
            st.phase["connect"].append(t1 - t0)
            st.phase["login"].append(t2 - t1)
            st.phase["select"].append(t3 - t2)
            st.phase["fetch"].append(t4 - t3)
            st.phase["logout"].append(t5 - t4)
            if reused:
                st.reuse += 1


async def throughput_worker(wid, args, sslctx, clock, st, rng):
    k = (wid % args.users) + 1
    user = f"{args.user_prefix}{k}".encode()
    pw = args.password_format.format(n=k).encode()
    writer = None
    try:
        async with timeout_ctx(args.op_timeout):
            reader, writer = await open_conn(args, sslctx)
            _, tg, _ = await command(reader, writer, b"a1", b"LOGIN " + user + b" " + pw)
            if status_of(tg, b"a1") != b"OK":
                raise ImapError("LOGIN " + status_of(tg, b"a1").decode())
            _, tg, _ = await command(reader, writer, b"a2", b"SELECT INBOX")
            unt, tg, _ = await command(reader, writer, b"a3", b"UID SEARCH LARGER 1000000")
            uids = [u.split()[2:] for u in unt if u.startswith(b"* SEARCH")]
            uids = [x for l in uids for x in l]
            if not uids:
                raise ImapError("no message larger than 1 MB in INBOX")
            uid = uids[0]
        n = 0
        fetch_cmd = b"UID FETCH " + uid + b" " + args.fetch_item.encode()
        while time.monotonic() < clock.end:
            n += 1
            tag = b"f%d" % n
            t0 = time.monotonic()
            async with timeout_ctx(args.op_timeout):
                _, tg, lit = await command(reader, writer, tag, fetch_cmd)
            t1 = time.monotonic()
            if status_of(tg, tag) != b"OK" or lit < 1000000:
                raise ImapError(f"FETCH failed or short ({lit} bytes)")
            st.ok_total += 1
            if clock.in_window(t1):
                st.ok += 1
                st.bytes += lit
                st.lat.append(t1 - t0)
        async with timeout_ctx(args.op_timeout):
            await command(reader, writer, b"z1", b"LOGOUT")
            await close_after_logout(reader, writer)
        writer = None
    except asyncio.CancelledError:
        abort(writer)
        raise
    except Exception as e:  # noqa: BLE001
        abort(writer)
        st.err(err_kind(e), clock.in_window(time.monotonic()))


def timeout_ctx(secs):
    if hasattr(asyncio, "timeout"):  # python >= 3.11
        return asyncio.timeout(secs)
    return _WaitForCompat(secs)


class _WaitForCompat:
    """Fallback for python < 3.11: cancel the current task after secs."""

    def __init__(self, secs):
        self.secs = secs

    async def __aenter__(self):
        task = asyncio.current_task()
        self.h = asyncio.get_running_loop().call_later(self.secs, task.cancel)
        self.fired_at = time.monotonic() + self.secs

    async def __aexit__(self, et, ev, tb):
        self.h.cancel()
        if et is asyncio.CancelledError and time.monotonic() >= self.fired_at:
            raise asyncio.TimeoutError()
        return False


# --------------------------------------------------------------------------- /proc sampling
def _stat_fields(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        s = f.read()
    return s[s.rindex(b")") + 2:].split()  # fields from 3 (state) on


def scan_procs():
    """One pass over /proc: {pid: stat fields}, {ppid: [children]}."""
    children = {}
    stats = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            f = _stat_fields(int(d))
        except (OSError, ValueError):
            continue
        pid = int(d)
        stats[pid] = f
        children.setdefault(int(f[1]), []).append(pid)
    return stats, children


def tree_cpu_ticks(root, scan=None):
    """utime+stime+cutime+cstime summed over root and all its live descendants.
    (Per-process times are scaled to the scheduler's exact runtime, so unlike
    /proc/stat they do not miss short, tick-aligned bursts.)"""
    stats, children = scan or scan_procs()
    if root not in stats:
        return None, 0
    total, n, todo = 0, 0, [root]
    while todo:
        p = todo.pop()
        f = stats.get(p)
        if f is None:
            continue
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        n += 1
        todo.extend(children.get(p, ()))
    return total, n


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]), idle, v[7]  # total, idle+iowait, steal (ticks, all cpus)


def rss_of(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads")):
                    k, v = line.split(":", 1)
                    out[k] = v.strip()
    except OSError:
        pass
    return out


class Watch:
    def __init__(self, specs):
        self.items = []
        for s in specs:
            name, _, pid = s.partition("=")
            self.items.append((name, int(pid)))
        self.begin = {}
        self.end = {}

    def sample(self, into):
        into["_t"] = time.monotonic()
        into["_self"] = sum(os.times()[:2])
        into["_machine"] = machine_cpu()
        scan = scan_procs()
        # every process descends from init (1) or kthreadd (2)
        into["_all"] = (tree_cpu_ticks(1, scan)[0] or 0) + (tree_cpu_ticks(2, scan)[0] or 0)
        for name, pid in self.items:
            into[name] = tree_cpu_ticks(pid, scan)
            f = scan[0].get(pid)  # the root alone: user vs system time
            into[name + "/us"] = (int(f[11]), int(f[12])) if f else None
            try:  # the root's main thread: ns on the CPU, ns runnable but waiting for one
                with open(f"/proc/{pid}/schedstat") as fh:
                    into[name + "/sched"] = tuple(int(x) for x in fh.read().split()[:2])
            except (OSError, ValueError):
                into[name + "/sched"] = None

    def report(self):
        b, e = self.begin, self.end
        if not b or not e:
            return {}
        dt = e["_t"] - b["_t"]
        res = {"window_s": round(dt, 3)}
        res["loadgen_cpu_pct"] = round(100 * (e["_self"] - b["_self"]) / dt, 1)
        tot = e["_machine"][0] - b["_machine"][0]
        idle = e["_machine"][1] - b["_machine"][1]
        res["machine_busy_pct"] = round(100 * NCPU * (tot - idle) / tot, 1) if tot else None
        res["steal_pct"] = round(100 * NCPU * (e["_machine"][2] - b["_machine"][2]) / tot, 1) if tot else None
        res["all_procs_cpu_pct"] = round(100 * (e["_all"] - b["_all"]) / CLK / dt, 1)
        res["machine_cores"] = NCPU
        other = res["all_procs_cpu_pct"] - res["loadgen_cpu_pct"]
        for name, pid in self.items:
            (c0, n0), (c1, n1) = b[name], e[name]
            if c0 is None or c1 is None:
                res[name] = {"pid": pid, "error": "process not found"}
                continue
            res[name] = {"pid": pid, "cpu_pct": round(100 * (c1 - c0) / CLK / dt, 1),
                         "procs_start": n0, "procs_end": n1}
            us0, us1 = b.get(name + "/us"), e.get(name + "/us")
            if us0 and us1:
                res[name]["root_user_pct"] = round(100 * (us1[0] - us0[0]) / CLK / dt, 1)
                res[name]["root_sys_pct"] = round(100 * (us1[1] - us0[1]) / CLK / dt, 1)
            s0, s1 = b.get(name + "/sched"), e.get(name + "/sched")
            if s0 and s1:
                # main thread only (ours: the event loop): % of the window on a CPU, and
                # % of the window runnable but waiting for a CPU (run-queue delay)
                res[name]["main_thread_run_pct"] = round(100 * (s1[0] - s0[0]) / 1e9 / dt, 1)
                res[name]["main_thread_runqueue_wait_pct"] = round(100 * (s1[1] - s0[1]) / 1e9 / dt, 1)
            res[name].update(rss_of(pid))
            other -= res[name]["cpu_pct"]
        res["other_procs_cpu_pct"] = round(other, 1)
        return res


# --------------------------------------------------------------------------- idle (scale) mode
def kb(v):
    """'12345 kB' -> 12345 (int), else None."""
    try:
        return int(str(v).split()[0])
    except (ValueError, IndexError):
        return None


GC_LINE = re.compile(rb"(\d+) ms: ([A-Za-z -]+?)(?: \([a-z ]+\))? ([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB")


def last_gc(path):
    """The last GC line `node --trace-gc` wrote to PATH: the JS heap (MB) in use
    before and after that GC and the heap committed after it; None if none yet."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            data = f.read()
    except OSError:
        return None
    hits = GC_LINE.findall(data)
    if not hits:
        return None
    t, kind, before, _, after, committed = hits[-1]
    return {"gc": kind.decode().strip(), "at_ms": int(t), "heap_used_before_mb": float(before),
            "heap_used_after_mb": float(after), "heap_committed_mb": float(committed)}


async def idle_run(args):
    """Scale mode: open --connections client connections (the last --logged-in of
    them also LOGIN), hold them, sample the memory of every --watch process, then
    check that each connection still answers a NOOP and close them all.
    Bounded: every phase has its own deadline (--phase-timeout)."""
    watch = Watch(args.watch)
    names = [n for n, _ in watch.items]
    pids = dict(watch.items)
    res = {"samples": {}, "errors": {}, "phases_s": {}}

    def sample(label):
        snap = {}
        for n in names:
            r = rss_of(pids[n])
            snap[n] = {k: kb(v) if k != "Threads" else int(v) for k, v in r.items()}
        snap["_t"] = round(time.monotonic() - t_start, 2)
        if args.gc_log:
            snap["_heap"] = last_gc(args.gc_log)
        res["samples"][label] = snap
        return snap

    def err(kind):
        res["errors"][kind] = res["errors"].get(kind, 0) + 1

    t_start = time.monotonic()
    sample("baseline")
    conns = []  # (reader, writer, logged_in)
    sem = asyncio.Semaphore(args.open_concurrency)
    n_login = min(args.logged_in, args.connections)
    n_pre = args.connections - n_login

    async def open_one(i, login):
        async with sem:
            writer = None
            try:
                async with timeout_ctx(args.op_timeout):
                    reader, writer = await open_conn(args, None)
                    if login:
                        k = (i % args.users) + 1
                        user = f"{args.user_prefix}{k}".encode()
                        pw = args.password_format.format(n=k).encode()
                        _, tg, _ = await command(reader, writer, b"a1", b"LOGIN " + user + b" " + pw)
                        if status_of(tg, b"a1") != b"OK":
                            raise ImapError("LOGIN " + status_of(tg, b"a1").decode())
                conns.append((reader, writer, login))
            except Exception as e:  # noqa: BLE001
                abort(writer)
                err(("login: " if login else "connect: ") + err_kind(e))

    async def phase(label, coros):
        t0 = time.monotonic()
        tasks = [asyncio.ensure_future(c) for c in coros]
        done, pending = await asyncio.wait(tasks, timeout=args.phase_timeout) if tasks else (set(), set())
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
            res["errors"][label + ": phase timeout"] = len(pending)
        res["phases_s"][label] = round(time.monotonic() - t0, 2)

    await phase("open_preauth", [open_one(i, False) for i in range(n_pre)])
    res["preauth_open"] = sum(1 for c in conns if not c[2])
    await asyncio.sleep(args.settle)
    sample("preauth_held")
    await phase("open_logged_in", [open_one(i, True) for i in range(n_login)])
    res["logged_in_open"] = sum(1 for c in conns if c[2])
    await asyncio.sleep(args.settle)
    sample("all_held")
    peak = {}
    end = time.monotonic() + args.hold
    while time.monotonic() < end:
        await asyncio.sleep(min(1.0, max(0.0, end - time.monotonic())))
        for n in names:
            v = kb(rss_of(pids[n]).get("VmRSS"))
            if v is not None:
                peak[n] = max(peak.get(n, 0), v)
    res["peak_rss_kb_during_hold"] = peak
    sample("after_hold")

    # every connection must still be there and answer
    ok = {"preauth": 0, "logged_in": 0}
    sem2 = asyncio.Semaphore(args.open_concurrency)

    async def noop(reader, writer, login):
        async with sem2:
            try:
                async with timeout_ctx(args.op_timeout):
                    _, tg, _ = await command(reader, writer, b"n1", b"NOOP")
                if status_of(tg, b"n1") == b"OK":
                    ok["logged_in" if login else "preauth"] += 1
                else:
                    err("noop: " + status_of(tg, b"n1").decode())
            except Exception as e:  # noqa: BLE001
                err("noop: " + err_kind(e))

    await phase("noop_check", [noop(*c) for c in conns])
    res["noop_ok"] = ok
    for _, w, _ in conns:
        abort(w)
    conns.clear()
    await asyncio.sleep(args.settle)
    sample("after_close")
    res["wall_s"] = round(time.monotonic() - t_start, 2)
    return res


def idle_main(args):
    signal.alarm(int(3 * args.phase_timeout + args.hold + 4 * args.settle + 120))
    res = asyncio.run(idle_run(args))
    res.update({"label": args.label, "mode": "idle", "target": f"{args.host}:{args.port}",
                "connections": args.connections, "logged_in": min(args.logged_in, args.connections),
                "users": args.users, "hold_s": args.hold})
    print(f"[{args.label or 'idle'}] idle {res['target']}: {res['preauth_open']} pre-auth + "
          f"{res['logged_in_open']} logged-in connections open; NOOP ok {res['noop_ok']}; errors {res['errors']}")
    for label, snap in res["samples"].items():
        parts = [f"{n}: RSS {v.get('VmRSS')} kB anon {v.get('RssAnon')} kB" for n, v in snap.items() if not n.startswith("_")]
        if snap.get("_heap"):
            h = snap["_heap"]
            parts.append(f"JS heap {h['heap_used_after_mb']} MB after the last GC ({h['gc']}), {h['heap_committed_mb']} MB committed")
        print(f"  {label:>13} (t={snap['_t']}s): " + "; ".join(parts))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    want = args.connections
    got = res["preauth_open"] + res["logged_in_open"]
    sys.exit(0 if got == want and sum(res["noop_ok"].values()) == want else 1)


# --------------------------------------------------------------------------- main
async def run(args):
    sslctx = None
    if args.tls != "no":
        sslctx = ssl.create_default_context()
        sslctx.check_hostname = False
        sslctx.verify_mode = ssl.CERT_NONE
    st = Stats()
    clock = Clock(args.warmup, args.duration)
    watch = Watch(args.watch)
    loop = asyncio.get_running_loop()
    loop.call_at(loop.time() + args.warmup, watch.sample, watch.begin)
    loop.call_at(loop.time() + args.warmup + args.duration, watch.sample, watch.end)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    worker = webmail_worker if args.mode == "webmail" else throughput_worker
    tasks = [asyncio.create_task(worker(i, args, sslctx, clock, st, random.Random(seed + i)))
             for i in range(args.concurrency)]
    remaining = clock.end + args.op_timeout + 2 - time.monotonic()
    done, pending = await asyncio.wait(tasks, timeout=max(1.0, remaining))
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=2)
    for t in done:
        if t.exception() is not None:
            st.err("worker crashed: " + err_kind(t.exception()), False)
    if not watch.end:
        watch.sample(watch.end)
    return st, watch.report(), seed, len(pending)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=10143)
    ap.add_argument("--mode", choices=("webmail", "throughput", "idle"), default="webmail")
    ap.add_argument("-c", "--concurrency", type=int, default=None,
                    help="workers (default 32 for webmail, 1 for throughput)")
    ap.add_argument("-d", "--duration", type=float, default=10.0, help="measured seconds (default 10)")
    ap.add_argument("--warmup", type=float, default=0.0, help="unmeasured seconds before the window (default 0)")
    ap.add_argument("-u", "--users", type=int, default=50, help="pick userK with K random in 1..U (default 50)")
    ap.add_argument("--user-prefix", default="user")
    ap.add_argument("--password-format", default="pass{n}")
    ap.add_argument("--tls", choices=("no", "implicit", "starttls"), default="no",
                    help="no (default) | implicit (imaps port) | starttls")
    ap.add_argument("--op-timeout", type=float, default=10.0,
                    help="max seconds for one iteration (webmail) or one fetch (throughput)")
    ap.add_argument("--fetch-item", default="BODY[]", help="throughput mode fetch item (default BODY[])")
    ap.add_argument("--watch", action="append", default=[], metavar="NAME=PID",
                    help="sample CPU of this process tree (and RSS of PID) over the window")
    ap.add_argument("--quickack", action="store_true",
                    help="re-arm TCP_QUICKACK after every read (client never delays ACKs); "
                         "isolates Nagle/delayed-ACK stalls caused by servers that send small split writes")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--source-ips", type=int, default=0,
                    help="webmail mode: user K connects from 127.0.0.(2 + K mod N) (default 0: the OS picks)")
    ap.add_argument("--connections", type=int, default=10000, help="idle mode: client connections to hold")
    ap.add_argument("--logged-in", type=int, default=2000, help="idle mode: how many of them LOGIN")
    ap.add_argument("--hold", type=float, default=10.0, help="idle mode: seconds to hold them all")
    ap.add_argument("--settle", type=float, default=2.0, help="idle mode: pause before each memory sample")
    ap.add_argument("--open-concurrency", type=int, default=200, help="idle mode: connects/LOGINs in flight")
    ap.add_argument("--gc-log", default=None, help="idle mode: stdout of a `node --trace-gc` daemon, for heap figures")
    ap.add_argument("--phase-timeout", type=float, default=180.0, help="idle mode: limit of each phase")
    ap.add_argument("--json", default=None, help="also write results as JSON to this file")
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    if args.concurrency is None:
        args.concurrency = 32 if args.mode == "webmail" else 1
    if args.duration <= 0 or args.concurrency <= 0 or args.users <= 0:
        ap.error("duration, concurrency and users must be positive")

    # hard failsafe: whatever happens, this process ends
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    if args.mode == "idle":
        idle_main(args)
        return
    signal.alarm(int(args.warmup + args.duration + args.op_timeout + 60))

    wall0 = time.monotonic()
    st, watch, seed, stuck = asyncio.run(run(args))
    wall = time.monotonic() - wall0

    res = {
        "label": args.label, "mode": args.mode, "target": f"{args.host}:{args.port}", "tls": args.tls,
        "concurrency": args.concurrency, "duration_s": args.duration, "warmup_s": args.warmup,
        "quickack": args.quickack,
        "users": args.users, "seed": seed, "wall_s": round(wall, 2),
        "ok_in_window": st.ok, "ok_total": st.ok_total,
        "errors_in_window": st.err_in_window, "errors": st.errors, "stuck_workers_cancelled": stuck,
        "rate_per_s": round(st.ok / args.duration, 1),
        "lat_ms": {p: round(1000 * pct(st.lat, q), 2) for p, q in
                   (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))},
    }
    if args.mode == "webmail":
        res["phase_p50_ms"] = {k: round(1000 * pct(v, 50), 2) for k, v in st.phase.items()}
        res["phase_p99_ms"] = {k: round(1000 * pct(v, 99), 2) for k, v in st.phase.items()}
        res["xproxyreuse_pct"] = round(100.0 * st.reuse / st.ok, 1) if st.ok else 0.0
    else:
        res["bytes_in_window"] = st.bytes
        res["MB_per_s"] = round(st.bytes / args.duration / 1e6, 1)
        res["MiB_per_s"] = round(st.bytes / args.duration / 1048576, 1)
    res["resources"] = watch

    unit = "iterations" if args.mode == "webmail" else "fetches"
    print(f"[{args.label or args.mode}] {args.mode} {res['target']} tls={args.tls} c={args.concurrency} "
          f"d={args.duration:g}s warmup={args.warmup:g}s users={args.users}{' quickack' if args.quickack else ''}")
    line = f"  {unit}: {st.ok} ok in window, {res['rate_per_s']}/s; errors in window: {st.err_in_window}"
    if args.mode == "throughput":
        line += f"; {res['MB_per_s']} MB/s ({res['MiB_per_s']} MiB/s)"
    print(line)
    l = res["lat_ms"]
    print(f"  latency ms: p50={l['p50']} p90={l['p90']} p99={l['p99']} max={l['max']}")
    if args.mode == "webmail":
        ph = res["phase_p50_ms"]
        print("  phase p50 ms: " + " ".join(f"{k}={v}" for k, v in ph.items())
              + f"   XPROXYREUSE: {res['xproxyreuse_pct']}% of logins")
    if st.errors:
        print(f"  errors (all, by kind): {st.errors}")
    if watch:
        parts = [f"all processes {watch['all_procs_cpu_pct']}% of {100 * NCPU}%"
                 f" (/proc/stat: {watch['machine_busy_pct']}%, steal {watch['steal_pct']}%)",
                 f"loadgen {watch['loadgen_cpu_pct']}%"]
        for name, _ in Watch(args.watch).items:
            w = watch.get(name, {})
            if "cpu_pct" in w:
                extra = f" rss={w.get('VmRSS', '?')} hwm={w.get('VmHWM', '?')} threads={w.get('Threads', '?')}" \
                    if name != "dovecot" else f" procs={w['procs_end']}"
                parts.append(f"{name} {w['cpu_pct']}%{extra}")
            else:
                parts.append(f"{name}: {w.get('error')}")
        parts.append(f"other {watch['other_procs_cpu_pct']}%")
        print("  cpu over window: " + " | ".join(parts))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    sys.exit(0 if st.ok > 0 else 1)


if __name__ == "__main__":
    main()
