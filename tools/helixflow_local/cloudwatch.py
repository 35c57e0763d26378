"""What CloudWatch and EventBridge Scheduler do in AWS and moto does not: fire schedules and evaluate alarms.

moto stores metrics and alarms but never evaluates an alarm and never runs a schedule, so for the local stack:

- ``Schedules``: every function's ``ScheduleV2`` event in template.yaml runs at its rate (``rate(N unit)``,
  seconds allowed locally, as the local stack shortens Waits) by invoking the function through moto's Lambda.
- ``AlarmEvaluator``: every alarm of template.yaml is created in moto and evaluated like CloudWatch does it:
  the alarm's own statistic over its own period, the last EvaluationPeriods datapoints from the metrics stored
  in moto, DatapointsToAlarm of them breaching the threshold -> ALARM, TreatMissingData for empty periods. The
  new state is stored in moto (``set_alarm_state``) and, on a change into ALARM, each Lambda in AlarmActions is
  invoked with the event CloudWatch sends (tests/events/cloudwatch_alarm_lambda_action.json) - only where the
  template grants ``lambda.alarms.cloudwatch.amazonaws.com`` that alarm as SourceArn, as AWS would refuse it.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

log = logging.getLogger("helixflow_local.cloudwatch")
ALARM_PRINCIPAL = "lambda.alarms.cloudwatch.amazonaws.com"
_UNITS_S = {"second": 1, "seconds": 1, "minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400,
            "days": 86400}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t, "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t, "LessThanOrEqualToThreshold": lambda v, t: v <= t}


def rate_seconds(expression: str) -> float:
    match = re.fullmatch(r"rate\((\d+)\s+(\w+)\)", expression.strip())
    if not match or match[2] not in _UNITS_S:
        raise ValueError(f"the local stack runs rate(N unit) schedules, not {expression!r}")
    return int(match[1]) * _UNITS_S[match[2]]


def cloudwatch_time(moment: datetime) -> str:
    """CloudWatch's timestamp format in alarm events: 2023-08-04T12:36:15.490+0000."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


@dataclass
class Alarm:
    name: str
    arn: str
    description: str
    namespace: str
    metric: str
    dimensions: dict[str, str]
    statistic: str
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    treat_missing: str
    actions: list[str]
    state: str = "INSUFFICIENT_DATA"
    state_reason: str = "Unchecked: Initial alarm creation"
    state_reason_data: str | None = None
    state_timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @classmethod
    def from_template(cls, name: str, arn: str, props: dict[str, Any]) -> Alarm:
        periods = int(props["EvaluationPeriods"])
        return cls(name=name, arn=arn, description=props.get("AlarmDescription", ""), namespace=props["Namespace"],
                   metric=props["MetricName"], dimensions={d["Name"]: str(d["Value"]) for d in props.get("Dimensions", [])},
                   statistic=props["Statistic"], period=int(props["Period"]), evaluation_periods=periods,
                   datapoints_to_alarm=int(props.get("DatapointsToAlarm", periods)),
                   threshold=float(props["Threshold"]), comparison=props["ComparisonOperator"],
                   treat_missing=props.get("TreatMissingData", "missing"), actions=list(props.get("AlarmActions", [])))

    def put_request(self) -> dict[str, Any]:
        return {"AlarmName": self.name, "AlarmDescription": self.description, "Namespace": self.namespace,
                "MetricName": self.metric, "Statistic": self.statistic, "Period": self.period,
                "EvaluationPeriods": self.evaluation_periods, "DatapointsToAlarm": self.datapoints_to_alarm,
                "Threshold": self.threshold, "ComparisonOperator": self.comparison,
                "TreatMissingData": self.treat_missing, "AlarmActions": self.actions,
                "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions.items()]}

    def evaluate(self, datapoints: dict[datetime, float], window_end: datetime) -> tuple[str, list[dict[str, Any]]]:
        """(state, the evaluated datapoints newest first) over the last EvaluationPeriods periods up to
        ``window_end``: ``datapoints`` maps each period's start to the statistic's value there."""
        evaluated, breaching, known = [], 0, 0
        for index in range(self.evaluation_periods):
            start = window_end - timedelta(seconds=self.period * (index + 1))
            value = datapoints.get(start)
            entry: dict[str, Any] = {"timestamp": cloudwatch_time(start)}
            if value is None:
                if self.treat_missing == "breaching":
                    breaching += 1
                    known += 1
                elif self.treat_missing == "notBreaching":
                    known += 1
            else:
                entry["value"] = value
                known += 1
                breaching += _COMPARE[self.comparison](value, self.threshold)
            evaluated.append(entry)
        if breaching >= self.datapoints_to_alarm:
            return "ALARM", evaluated
        if known == 0 and self.treat_missing == "missing":
            return "INSUFFICIENT_DATA", evaluated
        return "OK", evaluated

    def reason_data(self, evaluated: list[dict[str, Any]], now: datetime) -> str:
        return json.dumps({"version": "1.0", "queryDate": cloudwatch_time(now), "statistic": self.statistic,
                           "period": self.period, "recentDatapoints": [e["value"] for e in evaluated if "value" in e],
                           "threshold": self.threshold, "evaluatedDatapoints": evaluated}, separators=(",", ":"))

    def lambda_event(self, previous: dict[str, Any], account: str, region: str, now: datetime) -> dict[str, Any]:
        """The payload of a Lambda alarm action (the shape in tests/events/cloudwatch_alarm_lambda_action.json)."""
        return {"source": "aws.cloudwatch", "alarmArn": self.arn, "accountId": account,
                "time": cloudwatch_time(now), "region": region,
                "alarmData": {"alarmName": self.name,
                              "state": {"value": self.state, "reason": self.state_reason,
                                        "reasonData": self.state_reason_data,
                                        "timestamp": cloudwatch_time(self.state_timestamp)},
                              "previousState": previous,
                              "configuration": {"description": self.description, "metrics": [{
                                  "id": "m1", "returnData": True,
                                  "metricStat": {"metric": {"namespace": self.namespace, "name": self.metric,
                                                            "dimensions": dict(self.dimensions)},
                                                 "period": self.period, "stat": self.statistic}}]}}}


class LocalCloudWatch:
    """Schedules and alarm evaluation for one local stack, on one background thread."""

    def __init__(self, cloudwatch: Any, invoke: Callable[[str, dict[str, Any]], Any], *, account: str, region: str,
                 alarms: list[Alarm], allowed: set[tuple[str, str]], schedules: list[tuple[str, float]],
                 tick_s: float = 1.0) -> None:
        self.cloudwatch, self.invoke = cloudwatch, invoke
        self.account, self.region = account, region
        self.alarms = alarms
        self.allowed = allowed  # (function ARN, alarm ARN) pairs the template's Lambda permissions grant
        self.schedules = schedules  # (function ARN, interval seconds)
        self.tick_s = tick_s
        self.history: list[dict[str, Any]] = []  # every alarm transition and action, for tests and the console
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        for alarm in self.alarms:
            self.cloudwatch.put_metric_alarm(**alarm.put_request())
        self._thread = threading.Thread(target=self._run, name="local-cloudwatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        next_run = {arn: time.monotonic() for arn, _ in self.schedules}
        while not self._stop.is_set():
            for arn, interval in self.schedules:
                if time.monotonic() >= next_run[arn]:
                    next_run[arn] = time.monotonic() + interval
                    self._call(arn, {}, "schedule")
            try:
                self.evaluate_all(datetime.now(timezone.utc))
            except Exception:  # the server is going away during shutdown
                if self._stop.is_set():
                    return
                log.exception("alarm evaluation failed")
            self._stop.wait(self.tick_s)

    def _call(self, arn: str, event: dict[str, Any], why: str) -> Any:
        try:
            return self.invoke(arn, event)
        except Exception as exc:  # recorded; the loop goes on as CloudWatch's would
            log.warning("%s invocation of %s failed: %s", why, arn, exc)
            return {"error": str(exc)}

    def evaluate_all(self, now: datetime) -> None:
        for alarm in self.alarms:
            self.evaluate(alarm, now)

    def _datapoints(self, alarm: Alarm, window_end: datetime) -> dict[datetime, float]:
        start = window_end - timedelta(seconds=alarm.period * alarm.evaluation_periods)
        answer = self.cloudwatch.get_metric_data(
            MetricDataQueries=[{"Id": "m1", "ReturnData": True, "MetricStat": {
                "Metric": {"Namespace": alarm.namespace, "MetricName": alarm.metric,
                           "Dimensions": [{"Name": k, "Value": v} for k, v in alarm.dimensions.items()]},
                "Period": alarm.period, "Stat": alarm.statistic}}], StartTime=start, EndTime=window_end)
        result = answer["MetricDataResults"][0]
        return {ts.astimezone(timezone.utc).replace(microsecond=0): value
                for ts, value in zip(result["Timestamps"], result["Values"])}

    def evaluate(self, alarm: Alarm, now: datetime) -> None:
        # Periods are aligned to the epoch as CloudWatch aligns them, and only complete ones count: the period
        # under way has not all its datapoints yet (judged by them, an alarm would flap at every period start).
        window_end = datetime.fromtimestamp(math.floor(now.timestamp() / alarm.period) * alarm.period, timezone.utc)
        state, evaluated = alarm.evaluate(self._datapoints(alarm, window_end), window_end)
        if state == alarm.state:
            return
        previous = {"value": alarm.state, "reason": alarm.state_reason, "timestamp": cloudwatch_time(alarm.state_timestamp),
                    **({"reasonData": alarm.state_reason_data} if alarm.state_reason_data else {})}
        alarm.state, alarm.state_timestamp = state, now
        values = [e.get("value") for e in evaluated]
        alarm.state_reason = (f"Threshold Crossed: {len(evaluated)} datapoint(s) {values} evaluated against the "
                              f"threshold ({alarm.threshold:g}) ({alarm.comparison})")
        alarm.state_reason_data = alarm.reason_data(evaluated, now)
        self.cloudwatch.set_alarm_state(AlarmName=alarm.name, StateValue=state, StateReason=alarm.state_reason,
                                        StateReasonData=alarm.state_reason_data)
        entry = {"at": now.isoformat(), "alarm": alarm.name, "state": state, "previous": previous["value"],
                 "datapoints": values, "results": []}
        log.info("alarm %s: %s -> %s (datapoints %s)", alarm.name, previous["value"], state, values)
        if state == "ALARM":
            event = entry["event"] = alarm.lambda_event(previous, self.account, self.region, now)
            for action in alarm.actions:
                if (action, alarm.arn) not in self.allowed:
                    entry["results"].append({"action": action, "refused": "no Lambda permission for this alarm"})
                    continue
                # CloudWatch invokes alarm actions asynchronously: evaluation and schedules go on meanwhile.
                threading.Thread(target=lambda a=action: entry["results"].append(
                    {"action": a, "result": self._call(a, event, "alarm")}), name=f"alarm-{alarm.name}",
                    daemon=True).start()
        with self._lock:
            self.history.append(entry)

    def transitions(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.history)
