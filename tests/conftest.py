"""Shared fixtures (helpers live in tests/helpers.py)."""

from __future__ import annotations

import pytest

from helixflow_local.context import LocalLambdaContext


@pytest.fixture
def lambda_context():
    return LocalLambdaContext(function_name="helixflow-test", timeout_seconds=60)
