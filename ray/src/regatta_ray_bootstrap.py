"""regatta's bootstrap on a Ray cluster (launch mode `bootstrap`).

Ray runs this as one job. It places one WorkerHost actor on every alive node
that can hold a worker, pinned there, holding the worker's CPUs, GPUs and memory
through Ray (so Ray sets CUDA_VISIBLE_DEVICES), and each actor runs the regatta
worker binary from the job's working_dir. Nodes that join later get a worker on
the next poll; a node that leaves takes its worker with it, and the driver sees
the connection drop. The job ends when the driver is gone (its control address
stops answering) or when Ray stops the job; Ray then kills the actors, and each
worker dies with its actor (PR_SET_PDEATHSIG).

Configuration comes as JSON in REGATTA_RAY_CONFIG; the cluster token as a
file of the job's py_modules package (REGATTA_SECRETS_MODULE names it; the
workers inherit PYTHONPATH and read it themselves). Only long-stable Ray APIs are used (ray.nodes, actors,
NodeAffinitySchedulingStrategy).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


# The unpacked working_dir. Taken from this file's path, not the cwd: nodes that
# share a temp dir on one host may unpack the package again under our feet.
HERE = os.path.dirname(os.path.realpath(__file__))


def log(message):
    print(f"regatta-bootstrap: {message}", flush=True)


@ray.remote
class WorkerHost:
    """Runs one regatta worker on its node for as long as the actor lives."""

    def run(self, argv):
        env = dict(os.environ)
        gpu_ids = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
        if not gpu_ids:
            # Ray leaves every GPU visible to actors that hold none.
            env["CUDA_VISIBLE_DEVICES"] = ""
        argv = argv + ["--gpus", str(len(gpu_ids))]
        return subprocess.Popen(argv, env=env).wait()


def driver_answers(address):
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
            return True
    except OSError:
        return False


def request_for(cfg, resources):
    """The (cpus, gpus, memory) a worker on a node with `resources` reserves."""
    cpus = cfg["cpus"] if cfg["cpus"] is not None else resources.get("CPU", 0)
    gpus = cfg["gpus"] if cfg["gpus"] is not None else resources.get("GPU", 0)
    return cpus, gpus, cfg["memory"]


def fits(want, resources):
    cpus, gpus, memory = want
    return (
        cpus <= resources.get("CPU", 0)
        and gpus <= resources.get("GPU", 0)
        and memory <= resources.get("memory", 0)
    )


def launch(cfg, node):
    node_id = node["NodeID"]
    want = request_for(cfg, node["Resources"])
    cpus, gpus, memory = want
    spill = os.path.join(tempfile.gettempdir(), "regatta-ray-spill", cfg["session"], node_id[:12])
    argv = [os.path.join(HERE, "regatta")] + cfg["worker_args"] + [
        "--cpus", str(max(1, int(cpus))),
        "--node-label", "ray:" + node_id,
        "--bind", node["NodeManagerAddress"] + ":0",
        "--spill-dir", spill,
    ]
    options = {
        "num_cpus": cpus,
        "num_gpus": gpus,
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False),
    }
    if memory > 0:
        options["memory"] = memory
    actor = WorkerHost.options(**options).remote()
    log(f"node {node_id[:12]}: launching a worker (CPU {cpus}, GPU {gpus}, memory {memory})")
    return actor, actor.run.remote(argv)


def main():
    cfg = json.loads(os.environ["REGATTA_RAY_CONFIG"])
    ray.init()
    hosts = {}  # node id -> (actor, run ref)
    retry_after = {}  # node id -> time before which it gets no new worker
    refused = set()
    driver_lost_since = None
    while True:
        now = time.time()
        if driver_answers(cfg["control_addr"]):
            driver_lost_since = None
        else:
            driver_lost_since = driver_lost_since or now
            if now - driver_lost_since > cfg["driver_grace_s"]:
                log(f"the driver at {cfg['control_addr']} is gone; stopping")
                break
        for node in ray.nodes():
            node_id = node["NodeID"]
            resources = node.get("Resources", {})
            if not node.get("Alive") or node_id in hosts or resources.get("CPU", 0) <= 0:
                continue
            if retry_after.get(node_id, 0) > now:
                continue
            want = request_for(cfg, resources)
            if not fits(want, resources):
                if node_id not in refused:
                    refused.add(node_id)
                    log(f"node {node_id[:12]}: cannot hold a worker reserving {want}; it has {resources}")
                continue
            hosts[node_id] = launch(cfg, node)
        if hosts:
            refs = [ref for _, ref in hosts.values()]
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            for node_id, (actor, ref) in list(hosts.items()):
                if ref not in done:
                    continue
                try:
                    log(f"node {node_id[:12]}: worker exited with status {ray.get(ref)}")
                except Exception as e:  # the node or the actor died
                    log(f"node {node_id[:12]}: worker host lost: {type(e).__name__}")
                try:
                    ray.kill(actor)
                except Exception:
                    pass
                del hosts[node_id]
                retry_after[node_id] = now + cfg["retry_s"]
        time.sleep(cfg["poll_s"])
    for actor, _ in hosts.values():
        try:
            ray.kill(actor)
        except Exception:
            pass


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
