from helixflow.pipeline.runs import execution_name
from helixflow_local.events import eventbridge_object_created
from helixflow.pipeline.keys import safe_component
from tests.helpers import load_event


def _shape(value):
    """The structure of a JSON document: keys and value types, not values."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__


def test_local_event_has_the_exact_shape_eventbridge_sends():
    record = load_event("s3_put_sample1_R1.json")["Records"][0]
    saved = load_event("eventbridge_object_created.json")
    built = eventbridge_object_created(record, account="123456789012")
    saved["detail"]["object"].pop("version-id")  # only present on versioned buckets
    assert _shape(built) == _shape(saved)
    assert built["detail"]["object"]["key"] == "incoming/sample1_R1.fastq.gz"
    assert built["detail"]["object"]["etag"] == "0123456789abcdef0123456789abcdef"


def test_percent_encoded_keys_from_sqs_are_decoded_once():
    record = load_event("s3_put_sample1_R1.json")["Records"][0]
    record["s3"]["object"]["key"] = "incoming%2Fmy+sample_R1.fastq.gz"
    built = eventbridge_object_created(record, account="123456789012")
    assert built["detail"]["object"]["key"] == "incoming/my sample_R1.fastq.gz"


def test_execution_names_are_unique_safe_run_ids():
    names = {execution_name() for _ in range(200)}
    assert len(names) == 200
    for name in names:
        assert safe_component(name) == name and len(name) <= 80
