#!/usr/bin/env python3
"""Driver failover and replication overhead, with real processes on 127.0.0.1.

    benches/raft_failover.py [--regatta PATH] [--kills 20] [--out DIR]

Starts three driver replicas and two workers, then `--kills` times: SIGKILLs the
leader, at once submits a small job (the client follows the new leader), and reads
from `regatta drivers` when the new leader first placed tasks. The failover time is
that moment minus the kill. The killed replica is restarted on its own data dir
and catches up before the next round.

Then times the same small job on this three-replica cluster and on a lone driver
(five runs each) for the job overhead of replication.

Prints one JSON object: failover median and worst (ms), and the job overhead ratio.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOKEN = "bench-token"
JOB = "SELECT k % 7 AS g, count(*) AS n, sum(v) AS s FROM t GROUP BY k % 7 ORDER BY g"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, binary, root, replicas):
        self.binary = binary
        self.root = root
        self.addresses = [f"127.0.0.1:{free_port()}" for _ in range(replicas)]
        self.config = os.path.join(root, "cluster.toml")
        addresses = ", ".join(f'"{a}"' for a in self.addresses)
        data = f'data_dir = "{root}/raft"\n' if replicas > 1 else ""
        with open(self.config, "w") as f:
            f.write(
                f'[cluster]\nid = "bench"\n\n[driver]\naddresses = [{addresses}]\n{data}'
                f"raft_heartbeat_ms = 50\n\n[worker]\ncpus = 2\n"
            )
        self.env = dict(os.environ, REGATTA_TOKEN=TOKEN, RUST_LOG="info")
        self.env.pop("REGATTA_DRIVER", None)
        self.drivers = [None] * replicas
        self.logs = [os.path.join(root, f"driver-{i + 1}.log") for i in range(replicas)]
        self.workers = []
        for i in range(replicas):
            self.start_driver(i)
        for i in range(2):
            spill = os.path.join(root, f"w{i}")
            os.makedirs(spill, exist_ok=True)
            log = open(os.path.join(root, f"worker-{i}.log"), "ab")
            self.workers.append(
                subprocess.Popen(
                    [binary, "worker", "-c", self.config, "--spill-dir", spill],
                    env=self.env,
                    stdout=log,
                    stderr=log,
                )
            )

    def start_driver(self, i):
        log = open(self.logs[i], "ab")
        args = [self.binary, "driver", "-c", self.config, "--bind", self.addresses[i]]
        if len(self.addresses) > 1:
            args += ["--node-id", str(i + 1)]
        self.drivers[i] = subprocess.Popen(args, env=self.env, stdout=log, stderr=log)

    def cli(self, *args, check=True):
        r = subprocess.run(
            [self.binary, *args, "-c", self.config],
            env=dict(self.env, RUST_LOG="error"),
            capture_output=True,
            text=True,
        )
        if check and r.returncode != 0:
            raise RuntimeError(f"regatta {' '.join(args)}: {r.stderr}")
        return r

    def drivers_table(self):
        r = self.cli("drivers", check=False)
        rows = []
        for line in r.stdout.splitlines()[1:]:
            f = line.split()
            if len(f) >= 8:
                rows.append((int(f[0][5:]), f[2], int(f[3]), int(f[5]), int(f[7])))
        return rows

    def leader(self, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            for node, role, term, _, _ in self.drivers_table():
                if role == "leader":
                    return node - 1, term
            time.sleep(0.05)
        raise RuntimeError("no leader elected")

    def wait_caught_up(self, i, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            rows = {n - 1: (role, applied) for n, role, _, applied, _ in self.drivers_table()}
            if i in rows and rows[i][0] == "follower":
                top = max(a for _, a in rows.values())
                if rows[i][1] >= top:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"driver {i + 1} did not catch up")

    def run_job(self, table):
        t0 = time.time()
        self.cli("submit", "-t", f"t={table}", "-f", "csv", JOB)
        return time.time() - t0

    def stop(self):
        for p in self.drivers + self.workers:
            if p is not None:
                p.kill()
                p.wait()


def first_placement_after(cluster, term):
    """The unix ms at which a leader of a term above `term` first placed tasks,
    as `regatta drivers` reports it (None while none has)."""
    for _, role, t, _, placed in cluster.drivers_table():
        if role == "leader" and t > term and placed > 0:
            return placed
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--regatta", default=os.environ.get("REGATTA_BIN", "target/debug/regatta"))
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    binary = os.path.abspath(args.regatta)
    root = args.out or tempfile.mkdtemp(prefix="regatta-failover-")
    os.makedirs(root, exist_ok=True)

    # A small table for the jobs.
    table_dir = os.path.join(root, "t")
    os.makedirs(table_dir, exist_ok=True)
    for part in range(4):
        subprocess.run(
            [binary, "sql", f"COPY (SELECT value AS k, value * 3 AS v FROM range({part}, 400000, 4)) "
             f"TO '{table_dir}/part-{part}.parquet' STORED AS PARQUET"],
            check=True, capture_output=True, env=dict(os.environ, RUST_LOG="error"),
        )
    table = f"{table_dir}/*.parquet"

    os.makedirs(os.path.join(root, "three"), exist_ok=True)
    c = Cluster(binary, os.path.join(root, "three"), 3)
    failovers = []
    try:
        c.leader()
        c.run_job(table)  # warm: workers registered, a first job through
        for k in range(args.kills):
            leader, term = c.leader()
            c.drivers[leader].send_signal(signal.SIGKILL)
            c.drivers[leader].wait()
            killed_ms = time.time() * 1000
            c.run_job(table)
            placed = first_placement_after(c, term)
            if placed is None:
                raise RuntimeError(f"kill {k + 1}: `regatta drivers` shows no placement by a new leader")
            failovers.append(placed - killed_ms)
            print(f"kill {k + 1}: first task placed {placed - killed_ms:.0f} ms after", file=sys.stderr)
            c.start_driver(leader)
            c.wait_caught_up(leader)
        three = [c.run_job(table) for _ in range(5)]
    finally:
        c.stop()

    os.makedirs(os.path.join(root, "one"), exist_ok=True)
    one_cluster = Cluster(binary, os.path.join(root, "one"), 1)
    try:
        time.sleep(1)
        one_cluster.run_job(table)
        one = [one_cluster.run_job(table) for _ in range(5)]
    finally:
        one_cluster.stop()

    report = {
        "kills": len(failovers),
        "failover_ms_median": round(statistics.median(failovers)),
        "failover_ms_worst": round(max(failovers)),
        "job_s_three_median": round(statistics.median(three), 3),
        "job_s_one_median": round(statistics.median(one), 3),
        "job_overhead_three_vs_one": round(statistics.median(three) / statistics.median(one), 2),
    }
    print(json.dumps(report))
    if not args.out:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
