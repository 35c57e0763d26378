"""`helixflow validate`: exit statuses, the one-line summary, the JSON shapes; in-process and as a real
subprocess of the installed entry point."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from helixflow_local.cli import main

GOOD = b"@r1/1 x\nACGT\n+\nII#I\n@r2/1\nACGTN\n+\nIIIII\n"
MATE = b"@r1/2 y\nTTTT\n+\nIIII\n@r2/2\nGG\n+\nII\n"
BAD = GOOD + b"@r3\nACGT\n+\nIII\n"  # record 3: quality one short; its quality line is line 12 at byte 51
ENTRY_POINT = Path(sys.executable).parent / "helixflow"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"good": tmp_path / "good.fq.gz", "mate": tmp_path / "mate.fq", "bad": tmp_path / "bad.fq",
             "phred64": tmp_path / "p64.fq"}
    paths["good"].write_bytes(gzip.compress(GOOD))
    paths["mate"].write_bytes(MATE)
    paths["bad"].write_bytes(BAD)
    paths["phred64"].write_bytes(b"@r1\nACGT\n+\nhhhh\n")
    return paths


def run(*args: object):
    return CliRunner().invoke(main, ["validate", *map(str, args)])


def test_valid_file_prints_a_summary(files):
    result = run(files["good"])
    assert result.exit_code == 0
    assert result.stdout == f"OK {files['good']}: 2 records, 9 bases, length 4-5, phred33, gzip\n"


def test_valid_pair_as_json(files):
    result = run(files["good"], files["mate"], "--json")
    assert result.exit_code == 0
    body = json.loads(result.stdout)
    assert {k: body[k] for k in ("valid", "paired", "records", "bases", "min_length", "max_length",
                                 "quality_encoding")} == {
        "valid": True, "paired": True, "records": 2, "bases": 15, "min_length": 2, "max_length": 5,
        "quality_encoding": "phred33"}
    assert [(f["file"], f["compression"]) for f in body["files"]] == [
        (str(files["good"]), "gzip"), (str(files["mate"]), "none")]


def test_invalid_file_as_json_exits_2(files):
    result = run(files["bad"], "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {
        "valid": False, "error": "InvalidFastq", "code": "SEQ_QUAL_LENGTH_MISMATCH",
        "message": "record 3: sequence has 4 bases but quality has 3 characters",
        "file": str(files["bad"]), "record": 3, "line": 12, "byte_offset": 51}


def test_invalid_file_prints_one_readable_line_on_stderr(files):
    result = run(files["bad"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == ("InvalidFastq (SEQ_QUAL_LENGTH_MISMATCH): record 3: sequence has 4 bases but "
                             f"quality has 3 characters ({files['bad']}, record 3, line 12, byte 51)\n")


def test_pair_mismatch_is_invalid(files, tmp_path):
    other = tmp_path / "other.fq"
    other.write_bytes(MATE.replace(b"@r2/2", b"@r9/2"))
    result = run(files["good"], other, "--json")
    assert result.exit_code == 2
    body = json.loads(result.stdout)
    assert (body["code"], body["file"], body["record"], body["line"], body["byte_offset"]) == (
        "PAIR_NAME_MISMATCH", str(other), 2, 5, 20)


def test_phred64_needs_the_flag(files):
    assert json.loads(run(files["phred64"], "--json").stdout)["code"] == "PHRED64_NOT_SUPPORTED"
    result = run(files["phred64"], "--json", "--allow-phred64")
    assert result.exit_code == 0 and json.loads(result.stdout)["quality_encoding"] == "phred64"


@pytest.mark.parametrize("args", [[], ["--no-such-option", "x"], ["a", "b", "c"]])
def test_usage_errors_are_refused_with_one_named_line(args):
    result = run(*args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "(see `helixflow validate --help`)" in result.stderr


def test_an_input_that_cannot_be_opened_is_refused(tmp_path):
    result = run(tmp_path / "absent.fq", "--json")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"FileNotFoundError (ENOENT): No such file or directory: {tmp_path / 'absent.fq'}\n"
    directory = run(tmp_path)
    assert directory.exit_code == 2 and directory.stderr.startswith("IsADirectoryError (EISDIR)")


def test_stdin_is_dash(files):
    result = CliRunner().invoke(main, ["validate", "-", "--json"], input=files["good"].read_bytes())
    assert result.exit_code == 0 and json.loads(result.stdout)["files"][0]["file"] == "-"


def test_real_subprocess_of_the_entry_point(files):
    def helixflow(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run([str(ENTRY_POINT), "validate", *map(str, args)], capture_output=True, text=True,
                              timeout=60)

    valid = helixflow(files["good"], files["mate"])
    assert valid.returncode == 0 and valid.stdout.startswith("OK ") and "2 pairs" in valid.stdout
    invalid = helixflow(files["bad"], "--json")
    assert invalid.returncode == 2
    assert json.loads(invalid.stdout)["code"] == "SEQ_QUAL_LENGTH_MISMATCH"
    assert invalid.stderr.startswith("InvalidFastq (SEQ_QUAL_LENGTH_MISMATCH): ")
    for refused in (helixflow(), helixflow(files["good"], "--bogus"), helixflow(Path(files["good"]).with_name("nope.fq"))):
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
