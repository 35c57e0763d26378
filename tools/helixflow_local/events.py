"""S3 notifications (as moto delivers them to SQS) -> the EventBridge "Object Created" event AWS sends.

In AWS the bucket's EventBridge notifications and the template's rule start the state machine with this exact
event. moto's EventBridge cannot target Step Functions, so locally the bucket notifies an SQS queue and the
poller rebuilds the EventBridge shape (tests/events/ holds the saved AWS form it must match).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote_plus

_REASONS = {"Put": "PutObject", "Post": "PostObject", "Copy": "CopyObject",
            "CompleteMultipartUpload": "CompleteMultipartUpload"}


def eventbridge_object_created(record: dict[str, Any], *, account: str) -> dict[str, Any]:
    s3 = record["s3"]
    obj = s3["object"]
    action = record.get("eventName", "ObjectCreated:Put").split(":", 1)[-1]
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": s3["bucket"]["name"]},
        "object": {
            # S3 -> SQS percent-encodes keys (spaces as '+'); EventBridge carries the key as stored.
            "key": unquote_plus(obj["key"]),
            "size": int(obj.get("size", 0)),
            "etag": obj.get("eTag", "").strip('"'),
            "sequencer": obj.get("sequencer", ""),
        },
        "request-id": record.get("responseElements", {}).get("x-amz-request-id", uuid.uuid4().hex[:16].upper()),
        "requester": account,
        "source-ip-address": record.get("requestParameters", {}).get("sourceIPAddress", "127.0.0.1"),
        "reason": _REASONS.get(action, "PutObject"),
    }
    if obj.get("versionId"):
        detail["object"]["version-id"] = obj["versionId"]
    return {
        "version": "0",
        "id": event_id(detail),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": account,
        "time": record.get("eventTime") or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": record.get("awsRegion", "us-east-1"),
        "resources": [f"arn:aws:s3:::{s3['bucket']['name']}"],
        "detail": detail,
    }


def event_id(detail: dict[str, Any]) -> str:
    """One id per object version, as EventBridge has one event per created version: moto notifies twice for
    a multipart upload (PutObject and CompleteMultipartUpload of the same version), and both must read as the
    same event. Without a version id (unversioned bucket) every notification is its own event."""
    obj = detail["object"]
    if not obj.get("version-id"):
        return str(uuid.uuid4())
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"s3://{detail['bucket']['name']}/{obj['key']}?versionId={obj['version-id']}"))
