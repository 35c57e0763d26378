import pytest

from helixflow.errors import InvalidParameters
from helixflow.pipeline.params import RunParameters, parse_parameters


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
