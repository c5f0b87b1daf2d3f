#!/usr/bin/env python3
"""A browser for benches/dashboard_pair.sh: starts chromedriver on a free
127.0.0.1 port (loopback only: no --allowed-ips) and one headless Chromium, then
follows commands, one per line on stdin, answering each on stdout:

    watch URL   open URL (the dashboard) and answer `watching` once the page says
                it is live (its server-sent event stream is connected)
    blank       open about:blank (nothing to draw, nothing pushed): `blank`
    shown       `shown: ...`, what the dashboard page shows now
    cpu         `cpu: S`, CPU seconds Chromium and chromedriver used so far

It quits when stdin closes. One browser serves every run, so a watched run and
an unwatched one differ only in what the open tab shows: Chromium's own start-up
(seconds of CPU in its first moments, whatever the page) is paid once, before
the runs, as it is for a person who opens the dashboard and leaves it open.

    python3 benches/dashboard_watch.py < commands
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, method: str, path: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"{}")


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) used so far by `root` and every process below it."""
    parents, cpu = {}, {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(pid)] = int(fields[1])
        cpu[int(pid)] = (int(fields[11]) + int(fields[12])) / tick
    def under(pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = parents.get(pid, 1)
        return False
    return sum(c for pid, c in cpu.items() if under(pid))


def main() -> int:
    port = free_port()
    driver = subprocess.Popen(["chromedriver", f"--port={port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                call(base, "GET", "/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    print("chromedriver did not answer within 30 s", file=sys.stderr)
                    return 1
                time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1000"]}}}}
        session = call(base, "POST", "/session", caps)["value"]["sessionId"]
        s = f"/session/{session}"
        live = {"script": "const l = document.getElementById('live');"
                          "return l ? l.textContent : 'no dashboard';", "args": []}
        print("ready", flush=True)
        for line in sys.stdin:
            cmd, _, arg = line.strip().partition(" ")
            if cmd == "watch":
                call(base, "POST", s + "/url", {"url": arg})
                deadline = time.monotonic() + 30
                while call(base, "POST", s + "/execute/sync", live)["value"] != "live":
                    if time.monotonic() > deadline:
                        print(f"the page at {arg.split('?')[0]} did not go live within 30 s",
                              file=sys.stderr)
                        return 1
                    time.sleep(0.1)
                print("watching", flush=True)
            elif cmd == "blank":
                call(base, "POST", s + "/url", {"url": "about:blank"})
                print("blank", flush=True)
            elif cmd == "shown":
                shown = call(base, "POST", s + "/execute/sync", {
                    "script": "return document.getElementById('live').textContent + ' | ' +"
                              " document.getElementById('app').innerText.slice(0, 200)"
                              ".replace(/\\s+/g, ' ');",
                    "args": []})["value"]
                print(f"shown: {shown}", flush=True)
            elif cmd == "cpu":
                print(f"cpu: {tree_cpu_seconds(driver.pid):.2f}", flush=True)
            else:
                print(f"unknown command {cmd!r}", file=sys.stderr)
                return 1
        call(base, "DELETE", s)
        return 0
    finally:
        driver.terminate()
        driver.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
