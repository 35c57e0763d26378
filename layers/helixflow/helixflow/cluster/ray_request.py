"""Runs on the Ray head as a tiny job the scaling Lambda submits: sets the autoscaler's standing resource request.

``python -m helixflow.cluster.ray_request '<bundles JSON>'``: the autoscaler keeps at least enough nodes for these
bundles until the next request replaces them; ``[]`` releases the request (the autoscaler's idle timeout then
removes the nodes). The request outlives this driver: Ray keeps it in the cluster's control store.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> None:
    bundles = json.loads(argv[0])
    if not isinstance(bundles, list) or not all(isinstance(b, dict) for b in bundles):
        raise SystemExit("usage: python -m helixflow.cluster.ray_request '[{\"CPU\": 1}, ...]'")
    import ray
    from ray.autoscaler.sdk import request_resources

    ray.init(logging_level="WARNING")  # a job driver: RAY_ADDRESS names its own cluster
    request_resources(bundles=bundles)
    print(json.dumps({"requested_bundles": len(bundles)}))


if __name__ == "__main__":
    main(sys.argv[1:])
