"""The local stack's alarm evaluation (moto never evaluates alarms): CloudWatch's rules over the alarm's own
statistic, period and threshold, and the Lambda action's event in the shape AWS sends."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from helixflow.scaling.decide import AlarmChange
from helixflow_local.cloudwatch import Alarm, cloudwatch_time, rate_seconds

SAVED = json.loads((Path(__file__).resolve().parents[2] / "events" / "cloudwatch_alarm_lambda_action.json").read_text())
END = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)


def _alarm(**overrides) -> Alarm:
    props = {"Namespace": "Helixflow", "MetricName": "SlurmJobsInFlight", "Statistic": "Maximum", "Period": 10,
             "EvaluationPeriods": 3, "DatapointsToAlarm": 2, "Threshold": 0,
             "ComparisonOperator": "LessThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
             "Dimensions": [{"Name": "Cluster", "Value": "slurm"}, {"Name": "Partition", "Value": "cpu"}],
             "AlarmActions": ["arn:aws:lambda:us-east-1:123456789012:function:scale"], **overrides}
    return Alarm.from_template("a", "arn:aws:cloudwatch:us-east-1:123456789012:alarm:a", props)


def _points(*values):
    return {END - timedelta(seconds=10 * (i + 1)): v for i, v in enumerate(values) if v is not None}


@pytest.mark.parametrize(("values", "state"), [((0, 0, 3), "ALARM"), ((0, 3, 3), "OK"), ((None, 0, 0), "ALARM"),
                                                ((None, None, 0), "OK")])
def test_datapoints_to_alarm_of_the_evaluation_periods_breach(values, state):
    assert _alarm().evaluate(_points(*values), END)[0] == state


def test_missing_data_is_insufficient_when_treated_as_missing():
    assert _alarm(TreatMissingData="missing").evaluate({}, END)[0] == "INSUFFICIENT_DATA"
    assert _alarm(TreatMissingData="breaching", DatapointsToAlarm=3).evaluate({}, END)[0] == "ALARM"


def test_the_lambda_event_has_the_shape_cloudwatch_sends_and_the_scaling_lambda_reads():
    alarm = _alarm()
    state, evaluated = alarm.evaluate(_points(0, 0, 0), END)
    alarm.state, alarm.state_timestamp, alarm.state_reason = state, END, "Threshold Crossed"
    alarm.state_reason_data = alarm.reason_data(evaluated, END)
    event = alarm.lambda_event({"value": "OK", "reason": "", "timestamp": cloudwatch_time(END)}, "123456789012",
                               "us-east-1", END)

    def shape(value):
        return {k: shape(v) for k, v in value.items()} if isinstance(value, dict) else type(value).__name__

    saved = shape(SAVED)
    saved["alarmData"]["state"]["reasonData"] = "str"  # AWS's own state carries it too (the example omits it)
    ours = shape(event)
    ours["alarmData"]["configuration"]["metrics"] = saved["alarmData"]["configuration"]["metrics"] = "list"
    ours["alarmData"]["previousState"] = saved["alarmData"]["previousState"] = "dict"
    assert ours == saved
    assert set(event["alarmData"]["configuration"]["metrics"][0]["metricStat"]) <= set(
        SAVED["alarmData"]["configuration"]["metrics"][0]["metricStat"])
    change = AlarmChange.parse(event)
    assert (change.metric, change.dimensions, change.period, change.evaluated_datapoints) == (
        "SlurmJobsInFlight", {"Cluster": "slurm", "Partition": "cpu"}, 10, 3)
    assert cloudwatch_time(END) == "2026-12-01T10:00:00.000+0000"


def test_schedules_run_at_their_rate():
    assert rate_seconds("rate(1 minute)") == 60 and rate_seconds("rate(5 seconds)") == 5
    with pytest.raises(ValueError):
        rate_seconds("cron(0 * * * ? *)")
