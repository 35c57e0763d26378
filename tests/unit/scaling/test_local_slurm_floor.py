"""The local Slurm actuator (LocalSlurmFloor): a decision's bounds as Slurm power-saving settings - the floor as
SuspendExcNodes with a count plus a power-up of the nodes it lacks, the maximum as drained nodes - applied once
per decision id, refused outside the node group's bounds. scontrol is recorded here; the integration test
(tests/integration/test_elastic_loop.py) runs it against a real Slurm."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helixflow.errors import ClusterNotConfigured, ClusterUnavailable
from helixflow.scaling.decide import LocalSlurmFloor, actuators, hostlist
from helixflow.scaling.policy import Policy

NODES = ["elastic1", "elastic2", "elastic3"]


class Scontrol:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, argv, **kwargs):
        assert isinstance(argv, list) and "shell" not in kwargs  # arguments never pass through a shell
        assert kwargs["env"]["SLURM_CONF"].endswith("slurm.conf")
        self.calls.append(argv[1:])
        if self.fail:
            raise subprocess.CalledProcessError(1, argv, stderr="slurm_reconfigure error: Access/permission denied")
        return subprocess.CompletedProcess(argv, 0, "", "")


def _floor(tmp_path: Path, states: dict[str, tuple[str, list[str]]], scontrol: Scontrol) -> LocalSlurmFloor:
    nodes = [{"name": name, "state": state, "state_flags": flags} for name, (state, flags) in states.items()]
    return LocalSlurmFloor(tmp_path / "slurm.conf", "cpu", NODES, lambda: nodes, run=scontrol)


POWERED_DOWN = ("idle", ["CLOUD", "POWERED_DOWN"])
UP = ("allocated", ["CLOUD"])


def test_raising_the_floor_keeps_that_many_nodes_and_powers_up_the_missing_ones(tmp_path):
    scontrol = Scontrol()
    floor = _floor(tmp_path, {"elastic1": UP, "elastic2": POWERED_DOWN, "elastic3": POWERED_DOWN}, scontrol)
    applied = floor.apply(2, Policy(max_nodes=3), "d1")
    assert applied == {"slurm": "updated", "minInstanceCount": 2, "maxInstanceCount": 3,
                       "powered_up": ["elastic2"], "drained": []}
    assert "SuspendExcNodes=elastic[1-3]:2\n" in (tmp_path / "power_floor.conf").read_text()
    assert scontrol.calls == [["reconfigure"], ["update", "NodeName=elastic2", "State=POWER_UP"]]


def test_the_same_decision_applied_again_changes_nothing(tmp_path):
    scontrol = Scontrol()
    floor = _floor(tmp_path, {n: POWERED_DOWN for n in NODES}, scontrol)
    first = floor.apply(1, Policy(max_nodes=3), "d1")
    calls = list(scontrol.calls)
    again = floor.apply(1, Policy(max_nodes=3), "d1")
    assert first["powered_up"] == ["elastic1"] and again == {"slurm": "unchanged", "minInstanceCount": 1,
                                                             "maxInstanceCount": 3, "powered_up": []}
    assert scontrol.calls == calls


def test_releasing_the_floor_leaves_the_nodes_to_slurms_idle_timeout(tmp_path):
    scontrol = Scontrol()
    floor = _floor(tmp_path, {"elastic1": ("idle", ["CLOUD"]), "elastic2": ("idle", ["CLOUD"]),
                              "elastic3": POWERED_DOWN}, scontrol)
    floor.apply(2, Policy(max_nodes=3), "d1")
    released = floor.apply(0, Policy(max_nodes=3), "d2")
    assert released["minInstanceCount"] == 0 and released["powered_up"] == []
    assert "SuspendExcNodes" not in (tmp_path / "power_floor.conf").read_text()
    assert scontrol.calls == [["reconfigure"], ["reconfigure"]]  # nothing powered down by hand


def test_nodes_past_the_maximum_are_drained_and_those_within_it_undrained(tmp_path):
    scontrol = Scontrol()
    floor = _floor(tmp_path, {"elastic1": ("idle", ["CLOUD", "POWERED_DOWN", "DRAIN"]), "elastic2": POWERED_DOWN,
                              "elastic3": POWERED_DOWN}, scontrol)
    applied = floor.apply(1, Policy(max_nodes=2), "d1")
    assert applied["drained"] == ["elastic3"] and applied["maxInstanceCount"] == 2
    assert ["update", "NodeName=elastic3", "State=DRAIN", f"Reason={LocalSlurmFloor.DRAIN_REASON}"] in scontrol.calls
    assert ["update", "NodeName=elastic1", "State=RESUME"] in scontrol.calls
    assert "SuspendExcNodes=elastic[1-2]:1\n" in (tmp_path / "power_floor.conf").read_text()


@pytest.mark.parametrize(("desired", "maximum"), [(3, 2), (4, 4), (-1, 2)])
def test_bounds_outside_the_node_group_are_refused_before_anything_changes(tmp_path, desired, maximum):
    scontrol = Scontrol()
    with pytest.raises(ClusterNotConfigured) as caught:
        _floor(tmp_path, {n: POWERED_DOWN for n in NODES}, scontrol).apply(desired, Policy(max_nodes=max(maximum, 0)), "d")
    assert caught.value.code == "SCALING_NOT_CONFIGURED"
    assert scontrol.calls == [] and not (tmp_path / "power_floor.conf").exists()


def test_a_failing_scontrol_is_a_named_error(tmp_path):
    with pytest.raises(ClusterUnavailable) as caught:
        _floor(tmp_path, {n: POWERED_DOWN for n in NODES}, Scontrol(fail=True)).apply(1, Policy(max_nodes=3), "d")
    assert caught.value.code == "SLURM_SCALING_FAILED" and "permission denied" in caught.value.message


def test_the_local_stack_configuration_picks_the_local_actuator(tmp_path):
    key = tmp_path / "jwt.key"
    key.write_bytes(b"k" * 32)
    env = {"HELIXFLOW_LOCAL_SLURM_GROUPS": '{"cpu": ["elastic1", "elastic2"]}', "SLURM_CONF": str(tmp_path / "slurm.conf"),
           "SLURM_REST_URL": "http://127.0.0.1:1", "SLURM_USER_NAME": "me", "SLURM_JWT_KEY_FILE": str(key)}
    actuator = actuators(env)("slurm", "cpu")
    assert isinstance(actuator, LocalSlurmFloor) and actuator.nodes == ["elastic1", "elastic2"]
    with pytest.raises(ClusterNotConfigured) as caught:
        actuators(env)("slurm", "gpu")  # no elastic group serves it
    assert caught.value.code == "SCALING_NOT_CONFIGURED"


def test_the_floor_names_its_nodes_as_one_hostlist_expression():
    assert hostlist(["elastic1", "elastic2", "elastic4"]) == "elastic[1-2,4]"
    assert hostlist(["elastic3"]) == "elastic[3]"
    with pytest.raises(ClusterNotConfigured):
        hostlist(["elastic1", "gpu2"])
