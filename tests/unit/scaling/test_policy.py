"""The scaling policy: floors from the work per node within the bounds, never lowered during the cooldown, back
to the minimum only after the idle window."""

from __future__ import annotations

import pytest

from helixflow.scaling.policy import Load, Policy, Previous, decide, nodes_needed

POLICY = Policy(target_jobs_per_node=2, min_nodes=0, max_nodes=4, cooldown_s=300, idle_periods=10)
IDLE = Load(pending=0, running=0, nodes=3)


@pytest.mark.parametrize(("pending", "running", "needed"), [(0, 0, 0), (1, 0, 1), (2, 1, 2), (5, 0, 3), (40, 9, 4)])
def test_nodes_needed_is_the_work_over_the_target_per_node_within_the_bounds(pending, running, needed):
    assert nodes_needed(POLICY, Load(pending, running, 0)) == needed


def test_a_queued_burst_raises_the_floor_to_what_it_needs_capped_at_max():
    decision = decide(POLICY, "scale_out", Load(pending=7, running=0, nodes=0), None, now=1000, idle_periods_seen=1)
    assert (decision.action, decision.desired, decision.previous) == ("scale_out", 4, 0)
    assert "max 4" in decision.reason


def test_scale_out_never_lowers_a_floor_that_already_covers_the_work():
    decision = decide(POLICY, "scale_out", Load(pending=1, running=0, nodes=3), Previous(3, at=900), now=1000,
                      idle_periods_seen=1)
    assert (decision.action, decision.desired) == ("hold", 3)


def test_scale_out_raises_even_during_the_cooldown():
    decision = decide(POLICY, "scale_out", Load(pending=8, running=0, nodes=1), Previous(1, at=990), now=1000,
                      idle_periods_seen=1)
    assert (decision.action, decision.desired) == ("scale_out", 4)


def test_an_idle_cluster_goes_back_to_the_floor_after_the_idle_window():
    decision = decide(POLICY, "scale_in", IDLE, Previous(3, at=0), now=1000, idle_periods_seen=10)
    assert (decision.action, decision.desired, decision.previous) == ("scale_in", 0, 3)


def test_a_scale_in_alarm_with_a_shorter_window_than_the_idle_time_does_not_scale_in():
    decision = decide(POLICY, "scale_in", IDLE, Previous(3, at=0), now=1000, idle_periods_seen=3)
    assert (decision.action, decision.desired) == ("hold", 3)
    assert "3 of the 10 periods" in decision.reason


def test_scale_in_waits_for_the_cooldown_after_the_last_change():
    decision = decide(POLICY, "scale_in", IDLE, Previous(3, at=800), now=1000, idle_periods_seen=10)
    assert (decision.action, decision.desired) == ("hold", 3)
    assert "cooldown" in decision.reason


def test_scale_in_holds_while_any_work_is_left():
    decision = decide(POLICY, "scale_in", Load(pending=0, running=1, nodes=3), Previous(3, at=0), now=1000,
                      idle_periods_seen=10)
    assert (decision.action, decision.desired) == ("hold", 3)


def test_scale_in_at_the_floor_holds():
    assert decide(POLICY, "scale_in", IDLE, None, now=1000, idle_periods_seen=10).action == "hold"


def test_a_nonzero_minimum_is_the_floor_scale_in_returns_to():
    policy = Policy(target_jobs_per_node=1, min_nodes=1, max_nodes=3, cooldown_s=0, idle_periods=1)
    assert decide(policy, "scale_in", IDLE, Previous(3, at=0), now=10, idle_periods_seen=1).desired == 1


def test_the_policy_reads_the_templates_parameters_from_the_environment():
    policy = Policy.from_environment({"SCALING_MAX_NODES": "8", "SCALING_JOBS_PER_NODE": "1.5",
                                      "SCALING_COOLDOWN_S": "10", "SCALING_IDLE_PERIODS": "2", "SCALING_MIN_NODES": ""})
    assert policy == Policy(target_jobs_per_node=1.5, min_nodes=0, max_nodes=8, cooldown_s=10, idle_periods=2)


@pytest.mark.parametrize("bad", [{"target_jobs_per_node": 0}, {"min_nodes": 5, "max_nodes": 4}, {"idle_periods": 0}])
def test_an_inconsistent_policy_is_refused(bad):
    with pytest.raises(ValueError):
        Policy(**bad)
