#!/usr/bin/env python3
"""Daft 0.7.26 running a `shared/bench` workload (W1 here) over data in an
S3-compatible store: the peer of `benches/s3_pair.sh`.

  daft_s3.py --peer ../shared/bench/daft_workloads.py --workload image --data s3://bench/w1

Daft does not read AWS_ENDPOINT_URL by itself, so the store is handed to it the
way its users do, through an IOConfig set as the planning default before the
peer's own script runs: endpoint, keys and region from the standard AWS_*
variables, path-style addressing, plain http for a local server. Everything else
(the steps, the clock, the JSON line) is the peer script's, unchanged.
"""
import argparse
import os
import runpy
import sys

import daft
from daft.io import IOConfig, S3Config


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--peer", required=True, help="shared/bench/daft_workloads.py")
    args, rest = ap.parse_known_args()
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    s3 = S3Config(
        endpoint_url=endpoint,
        key_id=os.environ["AWS_ACCESS_KEY_ID"],
        access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        use_ssl=endpoint.startswith("https://"),
        force_virtual_addressing=False,
    )
    daft.set_planning_config(default_io_config=IOConfig(s3=s3))
    sys.argv = [args.peer] + rest
    runpy.run_path(args.peer, run_name="__main__")


if __name__ == "__main__":
    main()
