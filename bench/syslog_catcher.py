#!/usr/bin/env python3
# Copied unchanged from the team bench harness (/work/shared/bench/syslog_catcher.py).
"""Tiny syslog sink (python3 stdlib): bind an AF_UNIX datagram socket at
SOCKET_PATH and append every message, decoded, to LOGFILE.

imapproxyd only logs through syslog(3) (to /dev/log). start-imapproxy.sh runs
imapproxyd in a private mount namespace whose /dev is a small private dir whose
"log" entry is this socket, so the proxy's log ends up in the bench state dir
without touching the machine's real /dev/log or syslog daemon.
"""
import os
import signal
import socket
import sys
import time

FAC = ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
       "authpriv", "ftp", "12", "13", "14", "15", "local0", "local1", "local2", "local3",
       "local4", "local5", "local6", "local7"]
SEV = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]


def main():
    path, logfile = sys.argv[1], sys.argv[2]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    os.chmod(path, 0o666)  # imapproxyd drops to nobody before most logging
    out = open(logfile, "a", buffering=1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            data = s.recv(65536)
            msg = data.decode("utf-8", "replace").rstrip("\n\0")
            pri = ""
            if msg.startswith("<") and ">" in msg[:5]:
                p = int(msg[1:msg.index(">")])
                pri = f"{FAC[p >> 3] if (p >> 3) < len(FAC) else p >> 3}.{SEV[p & 7]} "
                msg = msg[msg.index(">") + 1:]
            out.write(time.strftime("%Y-%m-%d %H:%M:%S ") + pri + msg + "\n")
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


if __name__ == "__main__":
    main()
