"""batch_jobs/ray_preprocess/cluster.yaml passes Ray's own cluster-config validation (the pinned Ray's schema and
checks, as `ray up` applies them) and keeps the properties the pipeline relies on."""

from __future__ import annotations

from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "batch_jobs" / "ray_preprocess" / "cluster.yaml"


def test_cluster_yaml_is_valid_for_the_pinned_ray():
    raw = yaml.safe_load(CLUSTER_YAML.read_text())
    config = prepare_config(raw)  # fills Ray's AWS defaults, as `ray up` does before validating
    validate_config(config)
    assert config["provider"]["type"] == "aws"
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    workers = {name: spec for name, spec in config["available_node_types"].items() if name != config["head_node_type"]}
    assert set(workers) == {"ray.worker.cpu", "ray.worker.gpu"}
    assert workers["ray.worker.gpu"]["node_config"]["InstanceType"].startswith(("g", "p"))
    for spec in workers.values():
        assert spec["min_workers"] == 0
        assert spec["node_config"]["InstanceMarketOptions"] == {"MarketType": "spot"}
    assert raw["idle_timeout_minutes"] > 0 and raw["max_workers"] >= 1
    assert any("[ray]" in command and "constraints.txt" in command for command in raw["setup_commands"])
    for command in raw["head_start_ray_commands"][-1:] + raw["worker_start_ray_commands"][-1:]:
        assert "RAY_AUTH_MODE=token" in command and "RAY_AUTH_TOKEN_PATH=" in command
