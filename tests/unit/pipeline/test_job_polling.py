"""The cluster-job poll loop's Wait: how late a finished job is seen, and how many polls a long job costs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from helixflow.pipeline.jobs import MAX_POLLS, JobHandle, next_wait

SUBMITTED = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _handle() -> JobHandle:
    return JobHandle(backend="ray", job_id="run-1-phase1", stage="phase1", placement="ray", work_prefix="work/s/r/",
                     submitted=SUBMITTED.isoformat())


def _follow(duration_s: float, *, first: int, cap: int, chunks: int = 0) -> tuple[float, int]:
    """(seconds from submission until a poll sees the job done, polls made) for a job that runs ``duration_s``,
    its ``chunks`` (if any) finishing at an even rate, polled as the state machine does (first wait: ``first``)."""
    handle, t, polls = _handle(), float(first), 0
    while True:
        polls += 1
        if t >= duration_s:
            return t, polls
        details = {"chunks_done": int(chunks * t / duration_s), "chunk_count": chunks} if chunks else {}
        t += next_wait(handle, details, at=SUBMITTED + timedelta(seconds=t), first=first, cap=cap)


@pytest.mark.parametrize("duration_s", [40, 71, 311, 611, 3600, 6 * 3600])
def test_a_finished_job_is_seen_at_most_a_quarter_of_its_run_time_late(duration_s):
    # AWS defaults (JobPollFirstSeconds 10, JobPollMaxSeconds 300). A doubling wait polls at 10, 30, 70, 150,
    # 310, 610, 910 s: a job done just after a poll (71, 311, 611 s) was seen at 150, 610, 910 s.
    seen, _ = _follow(duration_s, first=10, cap=300)
    assert seen - duration_s <= max(10, min(300, 0.25 * duration_s)) + 1


def test_a_day_long_job_stays_far_below_the_poll_limit_and_the_history_limit():
    _, polls = _follow(24 * 3600, first=10, cap=300)
    _, with_progress = _follow(24 * 3600, first=10, cap=300, chunks=5000)
    assert polls < 400 and with_progress < 500 < MAX_POLLS
    assert 5 * with_progress < 25_000  # ~5 history events per turn of Wait -> Poll -> Choice


def test_a_job_reporting_its_chunks_is_polled_when_the_rest_should_be_done():
    # 9 of 10 chunks done after 36 s: the last should take 4 s (the age rule alone would wait 9 s).
    wait = next_wait(_handle(), {"chunks_done": 9, "chunk_count": 10}, at=SUBMITTED + timedelta(seconds=36),
                     first=1, cap=300)
    assert wait == 4
    seen, _ = _follow(36, first=1, cap=300, chunks=10)
    assert seen - 36 <= 2


def test_the_wait_is_never_shorter_than_the_first_interval_nor_longer_than_the_cap():
    handle = _handle()
    assert next_wait(handle, {}, at=SUBMITTED, first=10, cap=300) == 10
    assert next_wait(handle, {}, at=SUBMITTED + timedelta(days=2), first=10, cap=300) == 300
    # Progress that says "almost done" on an old job: 1/20 of its age at least, so a stuck last chunk does not
    # cost a poll every few seconds for hours.
    old = next_wait(handle, {"chunks_done": 999, "chunk_count": 1000}, at=SUBMITTED + timedelta(hours=1),
                    first=10, cap=300)
    assert old == 180
