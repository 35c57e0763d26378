"""A moto S3 client for the stage tests (each module makes its own bucket)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws


@pytest.fixture
def moto_s3(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("s3")
