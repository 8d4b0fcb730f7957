#!/usr/bin/env python3
# Ported from the team's bench harness (/work/shared/bench/seed_maildir.py) for
# imapproxy-ts' own `npm run bench`; the message set is unchanged so figures stay
# comparable with /work/shared/bench/RESULTS.md.
"""Seed Maildir INBOXes for the IMAP test bench (python3 stdlib only).

Writes a deterministic set of template messages once into TEMPLATE_DIR, then
hard-links them into every user's ~/Maildir/cur (maildir files are immutable,
so hard links are safe and make 200 users x 5 MB cost ~5 MB of disk).

Messages per user (UIDs are assigned by Dovecot in filename-timestamp order):
  UID 1..50 : small text messages, 2-8 KB, some with 8-bit (raw UTF-8)
              subjects / quotes so that ENVELOPE responses contain literals
  UID 51    : one ~5 MiB multipart message (base64 attachment) for
              throughput tests

Idempotent: a user whose Maildir already exists is left alone.
"""
import argparse
import base64
import os
import random
import sys

SMALL_COUNT = 50
LARGE_SIZE = 5 * 1024 * 1024
BASE_TS = 1700000000
SEED = 20240601

WORDS = ("imap proxy cache server client mailbox message folder select fetch "
         "envelope header body literal session login logout connection pool "
         "latency throughput webmail dovecot benchmark quota flag seen answered "
         "draft deleted recent uid validity modseq idle noop capability").split()

SUBJECTS = [
    "Weekly report {n}",
    "Re: meeting notes #{n}",
    "Invoice {n} attached",
    "Grüße aus München — Nachricht {n}",          # raw 8-bit -> literal in ENVELOPE
    'Quote "test" message {n}',                    # quoted specials
    "Fwd: [list] status update {n}",
    "=?UTF-8?B?w4lsw6h2ZSBudW3DqXJv?= {n}",       # RFC 2047 encoded word
    "Backslash \\ and parens () {n}",
]


def _text_body(rng, approx_bytes):
    lines = []
    total = 0
    while total < approx_bytes:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 11)))
        line = line[:76]
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) + "\n"


def small_message(i, rng):
    subj = SUBJECTS[i % len(SUBJECTS)].format(n=i)
    sender = f"Sender {i % 7} <sender{i % 7}@example.test>"
    day = 1 + (i % 28)
    hdr = (
        f"Return-Path: <sender{i % 7}@example.test>\n"
        f"Message-ID: <bench-{i}@imapbench.example.test>\n"
        f"Date: Mon, {day:02d} Jan 2024 10:{i % 60:02d}:00 +0000\n"
        f"From: {sender}\n"
        f"To: Bench User <user@example.test>\n"
        f"Cc: \"Team, Bench\" <team@example.test>\n"
        f"Subject: {subj}\n"
        f"MIME-Version: 1.0\n"
        f"Content-Type: text/plain; charset=utf-8\n"
        f"Content-Transfer-Encoding: 8bit\n"
        f"X-Bench-Index: {i}\n"
        f"\n"
    )
    body = _text_body(rng, rng.randint(2000, 8000))
    return (hdr + body).encode("utf-8")


def large_message(rng):
    boundary = "=_imapbench_boundary_0001"
    hdr = (
        "Return-Path: <bulk@example.test>\n"
        "Message-ID: <bench-large@imapbench.example.test>\n"
        "Date: Tue, 02 Jan 2024 12:00:00 +0000\n"
        "From: Bulk Sender <bulk@example.test>\n"
        "To: Bench User <user@example.test>\n"
        "Subject: Large 5 MiB message for throughput tests\n"
        "MIME-Version: 1.0\n"
        f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\n"
        "X-Bench-Index: large\n"
        "\n"
        "This is a multi-part message in MIME format.\n"
        f"--{boundary}\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        "See attachment.\n"
        f"--{boundary}\n"
        "Content-Type: application/octet-stream; name=\"blob.bin\"\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: attachment; filename=\"blob.bin\"\n"
        "\n"
    ).encode("ascii")
    trailer = f"\n--{boundary}--\n".encode("ascii")
    # base64 with 76-char lines + LF: 57 raw bytes -> 77 file bytes
    room = LARGE_SIZE - len(hdr) - len(trailer)
    raw_len = (room // 77) * 57
    raw = rng.randbytes(raw_len)
    b64 = base64.encodebytes(raw)  # 76 chars per line + \n
    msg = hdr + b64 + trailer
    return msg


def maildir_name(ts, idx, data):
    phys = len(data)
    virt = phys + data.count(b"\n") - data.count(b"\r\n")  # size with CRLF
    return f"{ts}.M{idx}P1.imapbench,S={phys},W={virt}"


def build_templates(tdir):
    marker = os.path.join(tdir, ".complete")
    if os.path.exists(marker):
        return sorted(n for n in os.listdir(tdir) if not n.startswith("."))
    os.makedirs(tdir, exist_ok=True)
    for n in os.listdir(tdir):
        os.unlink(os.path.join(tdir, n))
    rng = random.Random(SEED)
    names = []
    for i in range(1, SMALL_COUNT + 1):
        data = small_message(i, rng)
        name = maildir_name(BASE_TS + i, i, data)
        with open(os.path.join(tdir, name), "wb") as f:
            f.write(data)
        names.append(name)
    data = large_message(rng)
    name = maildir_name(BASE_TS + SMALL_COUNT + 1, SMALL_COUNT + 1, data)
    with open(os.path.join(tdir, name), "wb") as f:
        f.write(data)
    names.append(name)
    open(marker, "w").close()
    return sorted(names)


def seed_user(home, tdir, names, uid, gid):
    md = os.path.join(home, "Maildir")
    if os.path.isdir(os.path.join(md, "cur")) and os.path.exists(os.path.join(md, ".imapbench-seeded")):
        return False
    for d in (home, md, md + "/cur", md + "/new", md + "/tmp"):
        os.makedirs(d, exist_ok=True)
        os.chown(d, uid, gid)
        os.chmod(d, 0o700)
    for k, name in enumerate(names):
        # every 3rd small message is already \Seen
        flags = "S" if (k % 3 == 0 and k < SMALL_COUNT) else ""
        dst = os.path.join(md, "cur", f"{name}:2,{flags}")
        if not os.path.exists(dst):
            os.link(os.path.join(tdir, name), dst)
    m = os.path.join(md, ".imapbench-seeded")
    open(m, "w").close()
    os.chown(m, uid, gid)
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mail-root", required=True)
    ap.add_argument("--template-dir", required=True)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--prefix", default="user")
    ap.add_argument("--uid", type=int, required=True)
    ap.add_argument("--gid", type=int, required=True)
    a = ap.parse_args()
    names = build_templates(a.template_dir)
    for n in names:
        p = os.path.join(a.template_dir, n)
        os.chown(p, a.uid, a.gid)
        os.chmod(p, 0o600)
    seeded = 0
    for u in range(1, a.users + 1):
        if seed_user(os.path.join(a.mail_root, f"{a.prefix}{u}"), a.template_dir, names, a.uid, a.gid):
            seeded += 1
    print(f"seed: {len(names)} messages/user, {seeded} users newly seeded, {a.users} total", file=sys.stderr)


if __name__ == "__main__":
    main()
