"""Peak resident memory of this process and every process it started.

Daft runs a class UDF with `concurrency=N` in processes of its own
(daft/execution/udf.py starts `python -m daft.execution.udf_worker`), so the
model and its inference (faster-whisper, sentence-transformers, torch) are not
in the Daft process's own `ru_maxrss`. regatta runs everything in one process,
whose `ru_maxrss` is its whole peak. To compare the same thing, a peer reports
the peak of the sum of the resident sets of its process tree, sampled every
20 ms from /proc (a sampled peak can only miss a short spike, so it errs in the
peer's favour), next to its own process's `ru_maxrss`.

    sampler = TreeRss(); sampler.start()
    ...
    sampler.stop(); sampler.peak_mb, sampler.self_peak_mb
"""
import os
import resource
import threading


def _children(pid):
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return kids


def _rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(root=None):
    """The summed VmRSS of `root` (this process) and all its descendants, KiB."""
    root = root or os.getpid()
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _rss_kib(pid)
        todo.extend(_children(pid))
    return total


class TreeRss:
    def __init__(self, interval=0.02):
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, tree_rss_kib())
            self._stop.wait(self.interval)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, tree_rss_kib())

    @property
    def self_peak_mb(self):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    @property
    def peak_mb(self):
        """The tree's sampled peak, never below this process's own exact one."""
        return max(round(self.peak_kib / 1024, 1), self.self_peak_mb)


def print_daft_record(name, run, args, daft_version):
    """Runs `run(args)` (returning rows, seconds and extra fields) under a
    TreeRss sampler and prints the workload's JSON record, as every Daft peer
    script reports it."""
    import json

    sampler = TreeRss().start()
    rows, secs, extra = run(args)
    sampler.stop()
    rec = {"workload": name, "runner": "daft-native", "rows_out": rows, "seconds": round(secs, 4),
           "engine": "daft", "daft_version": daft_version,
           "peak_rss_mb": sampler.peak_mb, "peak_rss_self_mb": sampler.self_peak_mb}
    rec.update(extra)
    print(json.dumps(rec))
