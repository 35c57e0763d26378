import json
import re
from pathlib import Path

import pytest

from helixflow.errors import InvalidParameters
from helixflow.pipeline.params import MAX_DOCUMENT_BYTES, RunParameters, field_range, parse_parameters


def test_missing_sidecar_means_defaults():
    assert parse_parameters(None, source="x") == RunParameters()


def test_valid_sidecar_is_parsed():
    params = parse_parameters(b'{"adapter": "AGATCGGAAGAGC", "quality": 25, "min_length": 30}', source="s.json")
    assert (params.adapter, params.quality, params.min_length) == ("AGATCGGAAGAGC", 25, 30)


@pytest.mark.parametrize(
    ("document", "code", "fragment"),
    [
        (b"{not json", "PARAMS_NOT_JSON", "line 1"),
        (b"[1, 2]", "PARAMS_NOT_OBJECT", "object"),
        (b'{"min_lenght": 30}', "PARAMS_SCHEMA", "min_lenght"),
        (b'{"quality": 99}', "PARAMS_SCHEMA", "quality"),
        (b'{"adapter": "AGAT; rm -rf /"}', "PARAMS_SCHEMA", "adapter"),
    ],
)
def test_bad_parameters_fail_with_a_named_error_naming_the_field(document, code, fragment):
    with pytest.raises(InvalidParameters) as caught:
        parse_parameters(document, source="incoming/S1.json")
    assert caught.value.code == code
    assert fragment in caught.value.message
    assert "incoming/S1.json" in caught.value.message


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (b'{"quality": ' + b"9" * 5000 + b"}", "PARAMS_NOT_JSON"),  # past Python's int digit limit
        (b"[" * 100_000 + b"]" * 100_000, "PARAMS_TOO_LARGE"),
        (b"[" * 30_000 + b"]" * 30_000, "PARAMS_TOO_DEEP"),
        (b'{"adapter": "\xff\xfe"}', "PARAMS_NOT_UTF8"),
        (b'{"quality": 20, "pad": "' + b"x" * 70_000 + b'"}', "PARAMS_TOO_LARGE"),
    ],
    ids=["5000-digit-int", "100k-deep", "30k-deep-under-the-size-cap", "invalid-utf8", "over-64KiB"],
)
def test_hostile_documents_are_named_errors_not_crashes(document, code):
    with pytest.raises(InvalidParameters) as caught:
        parse_parameters(document, source="incoming/S1.json")
    assert caught.value.code == code
    assert "incoming/S1.json" in caught.value.message


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (b'{"quality": true}', "quality"),
        (b'{"quality": "20"}', "quality"),
        (b'{"quality": 20.0}', "quality"),
        (b'{"min_length": false}', "min_length"),
        (b'{"allow_phred64": "yes"}', "allow_phred64"),
        (b'{"allow_phred64": 1}', "allow_phred64"),
    ],
)
def test_types_are_strict_so_nothing_runs_with_a_coerced_value(document, field):
    with pytest.raises(InvalidParameters) as caught:
        parse_parameters(document, source="s.json")
    assert caught.value.code == "PARAMS_SCHEMA"
    assert field in caught.value.message


def test_a_document_at_the_size_limit_is_still_parsed():
    body = b'{"quality": 25}'
    document = body[:-1] + b" " * (MAX_DOCUMENT_BYTES - len(body)) + b"}"
    assert len(document) == MAX_DOCUMENT_BYTES
    assert parse_parameters(document, source="s.json").quality == 25


def _readme_parameter_table() -> dict[str, tuple[str, str]]:
    text = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = text[text.index("### Run parameters"):]
    section = section[:section.index("\n### ")]
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \| (.+?) \| .+ \|$", section, re.MULTILINE)
    return {name: (default, accepted) for name, default, accepted in rows}


def test_readme_parameter_table_is_the_schema():
    """Users read the README to write a sidecar: its names, defaults and ranges are the schema's."""
    def shown(value):
        return "unset" if value is None else f"`{json.dumps(value).strip(chr(34))}`"

    expected = {name: (shown(info.default), field_range(name)) for name, info in RunParameters.model_fields.items()}
    assert _readme_parameter_table() == expected


def test_schema_ranges_are_what_the_pipeline_enforces():
    """field_range is not just prose: its bounds are where validation starts and stops refusing."""
    assert [parse_parameters({"quality": q}, source="s").quality for q in (0, 60)] == [0, 60]
    for refused in ({"quality": -1}, {"quality": 61}, {"min_length": 0}, {"adapter": "ACGTA"}, {"adapter": "A" * 65}):
        with pytest.raises(InvalidParameters):
            parse_parameters(refused, source="s")
    assert parse_parameters({"adapter": "ACGTAC", "min_length": 1}, source="s").adapter == "ACGTAC"
