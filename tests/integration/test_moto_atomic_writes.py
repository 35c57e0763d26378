"""The local stack's DynamoDB writes are atomic, as DynamoDB's are: concurrent UpdateItems on one item (two mates
recording themselves at once) all land. moto alone loses some (it reads, copies and writes the item unlocked)."""

from __future__ import annotations

import threading

import boto3
import pytest

from helixflow_local.stack import _bound_moto_server, _patch_moto, _restore_moto

pytestmark = pytest.mark.integration
THREADS, WRITES = 8, 25


def test_concurrent_update_items_on_one_item_all_land():
    server = _bound_moto_server(0)
    saved = _patch_moto()
    try:
        client = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{server._port}", region_name="us-east-1",
                              aws_access_key_id="local", aws_secret_access_key="local")
        client.create_table(TableName="pairs", AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")

        def record(thread: int) -> None:
            for write in range(WRITES):
                client.update_item(TableName="pairs", Key={"pk": {"S": "sample"}},
                                   UpdateExpression=f"SET m{thread}_{write} = :v",
                                   ExpressionAttributeValues={":v": {"S": "x" * 200}})

        workers = [threading.Thread(target=record, args=(n,)) for n in range(THREADS)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        item = client.get_item(TableName="pairs", Key={"pk": {"S": "sample"}})["Item"]
        assert len(item) - 1 == THREADS * WRITES
    finally:
        _restore_moto(saved)
        server.stop()
