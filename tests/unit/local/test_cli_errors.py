"""Every `helixflow` failure is one line on stderr, ``<ErrorName> (<CODE>): <message>``, with an exit status
from the documented table, and never a traceback. The bad usages below are all refused before anything is
uploaded or started, so none needs a running stack."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from helixflow_local.cli import main
from helixflow_local.exit_codes import MEANING, ExitCode

GOOD = b"@r1\nACGT\n+\nIIII\n"
BAD = b"@r1\nACGT\n+\nIII\n"
README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with inputs, and no checkout: a command that got as far as starting a stack would exit 4."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELIXFLOW_HOME", raising=False)
    monkeypatch.setenv("HELIXFLOW_STATE_DIR", str(tmp_path / "state"))
    for name, body in {"S1_R1.fastq": GOOD, "S1_R2.fastq": GOOD, "S2_R2.fastq": GOOD, "bad.fastq": BAD,
                       "reads.txt": GOOD, "ref.fa": b">c\nACGTACGTAC\n"}.items():
        (tmp_path / name).write_bytes(body)
    (tmp_path / "notjson.json").write_text('{"quality": 25,}')
    (tmp_path / "unknown.json").write_text('{"min_lenght": 30}')
    (tmp_path / "wrongtype.json").write_text('{"allow_phred64": "yes"}')
    (tmp_path / "adir").mkdir()
    (tmp_path / "nocol.samplesheet.csv").write_text("sample,fastq_1\nS1,S1_R1.fastq\n")
    (tmp_path / "absent.samplesheet.csv").write_text("sample,fastq_1,fastq_2\nS1,S1_R1.fastq,S1_R2.fastq\n"
                                                     "S3,reads/S3.fastq,\n")
    (tmp_path / "escape.csv").write_text("sample,fastq_1,fastq_2\nS1,../S1_R1.fastq,\n")
    (tmp_path / "badvalue.csv").write_text("sample,fastq_1,fastq_2,quality\nS1,S1_R1.fastq,S1_R2.fastq,high\n")
    return tmp_path


REFUSED = ExitCode.REFUSED
CASES = [
    # (id, argv, exit status, the start of the stderr line, a fragment the message must hold)
    ("unknown-command", ["nope"], REFUSED, "NoSuchCommand (NO_SUCH_COMMAND)", "nope"),
    ("run-missing-file", ["run", "absent_R1.fastq"], REFUSED, "BadParameter (BAD_PARAMETER)", "does not exist"),
    ("run-directory", ["run", "adir"], REFUSED, "BadParameter (BAD_PARAMETER)", "is a directory"),
    ("run-same-file-twice", ["run", "S1_R1.fastq", "S1_R1.fastq"], REFUSED, "InvalidKey (SAME_FILE)", "same file"),
    ("run-same-file-by-two-paths", ["run", "S1_R1.fastq", "./adir/../S1_R1.fastq"], REFUSED,
     "InvalidKey (SAME_FILE)", "same file"),
    ("run-not-mates", ["run", "S1_R1.fastq", "S2_R2.fastq"], REFUSED, "InvalidKey (NOT_A_PAIR)", "not mates"),
    ("run-three-files", ["run", "S1_R1.fastq", "S1_R2.fastq", "S2_R2.fastq"], REFUSED, "UsageError (USAGE_ERROR)",
     "one FASTQ"),
    ("run-not-a-fastq-name", ["run", "reads.txt"], REFUSED, "InvalidKey (NOT_FASTQ_NAME)", "reads.txt"),
    ("run-params-not-json", ["run", "S1_R1.fastq", "S1_R2.fastq", "--params", "notjson.json"], REFUSED,
     "InvalidParameters (PARAMS_NOT_JSON)", "line 1 column 16"),
    ("run-params-unknown-field", ["run", "S1_R1.fastq", "S1_R2.fastq", "--params", "unknown.json"], REFUSED,
     "InvalidParameters (PARAMS_SCHEMA)", "min_lenght"),
    ("run-params-wrong-type", ["run", "S1_R1.fastq", "S1_R2.fastq", "--params", "wrongtype.json"], REFUSED,
     "InvalidParameters (PARAMS_SCHEMA)", "allow_phred64"),
    ("run-params-directory", ["run", "S1_R1.fastq", "--params", "adir"], REFUSED, "BadParameter (BAD_PARAMETER)",
     "is a directory"),
    ("run-bad-timeout", ["run", "S1_R1.fastq", "--timeout", "soon"], REFUSED, "BadParameter (BAD_PARAMETER)",
     "soon"),
    ("run-samplesheet-missing-column", ["run", "--samplesheet", "nocol.samplesheet.csv"], REFUSED,
     "InvalidSamplesheet (MISSING_COLUMN)", "fastq_2"),
    ("run-samplesheet-missing-file", ["run", "--samplesheet", "absent.samplesheet.csv"], REFUSED,
     "InvalidSamplesheet (FILE_NOT_FOUND)", "row 2 (line 3), column fastq_1"),
    ("run-samplesheet-escaping-path", ["run", "--samplesheet", "escape.csv"], REFUSED,
     "InvalidSamplesheet (PATH_OUTSIDE_PREFIX)", "row 1 (line 2), column fastq_1"),
    ("run-samplesheet-bad-value", ["run", "--samplesheet", "badvalue.csv"], REFUSED,
     "InvalidSamplesheet (BAD_VALUE)", "column quality"),
    ("run-samplesheet-and-reads", ["run", "S1_R1.fastq", "--samplesheet", "badvalue.csv"], REFUSED,
     "UsageError (USAGE_ERROR)", "--samplesheet"),
    ("run-nothing", ["run"], REFUSED, "UsageError (USAGE_ERROR)", "--samplesheet"),
    ("demo-no-pairs", ["demo", "--pairs", "0"], REFUSED, "BadParameter (BAD_PARAMETER)", "--pairs"),
    ("local-unknown", ["local", "sideways"], REFUSED, "NoSuchCommand (NO_SUCH_COMMAND)", "sideways"),
    ("validate-missing-file", ["validate", "absent.fastq"], REFUSED, "FileNotFoundError (ENOENT)", "absent.fastq"),
    ("validate-directory", ["validate", "adir"], REFUSED, "IsADirectoryError (EISDIR)", "adir"),
    ("validate-invalid-fastq", ["validate", "bad.fastq"], REFUSED, "InvalidFastq (SEQ_QUAL_LENGTH_MISMATCH)",
     "line 4"),
    ("validate-too-many", ["validate", "a", "b", "c"], REFUSED, "UsageError (USAGE_ERROR)", "unexpected extra"),
    ("preprocess-missing-file", ["preprocess", "absent.fastq", "--out", "o"], REFUSED,
     "BadParameter (BAD_PARAMETER)", "does not exist"),
    ("preprocess-directory", ["preprocess", "adir", "--out", "o"], REFUSED, "BadParameter (BAD_PARAMETER)",
     "is a directory"),
    ("preprocess-no-out", ["preprocess", "S1_R1.fastq"], REFUSED, "MissingParameter (MISSING_PARAMETER)", "--out"),
    ("preprocess-threads-0", ["preprocess", "S1_R1.fastq", "--out", "o", "--threads", "0"], REFUSED,
     "BadParameter (BAD_PARAMETER)", "--threads"),
    ("preprocess-threads-negative", ["preprocess", "S1_R1.fastq", "--out", "o", "--threads", "-1"], REFUSED,
     "BadParameter (BAD_PARAMETER)", "--threads"),
    ("preprocess-min-length-negative", ["preprocess", "S1_R1.fastq", "--out", "o", "--min-length", "-5"],
     REFUSED, "BadParameter (BAD_PARAMETER)", "greater than or equal to 1"),
    ("preprocess-quality-99", ["preprocess", "S1_R1.fastq", "--out", "o", "--quality", "99"], REFUSED,
     "BadParameter (BAD_PARAMETER)", "less than or equal to 60"),
    ("preprocess-adapter-too-short", ["preprocess", "S1_R1.fastq", "--out", "o", "--adapter", "ACG"], REFUSED,
     "BadParameter (BAD_PARAMETER)", "--adapter"),
    ("preprocess-adapter-not-acgt", ["preprocess", "S1_R1.fastq", "--out", "o", "--adapter2", "AGAT;rm -rf"],
     REFUSED, "BadParameter (BAD_PARAMETER)", "--adapter2"),
    ("preprocess-window-0", ["preprocess", "S1_R1.fastq", "--out", "o", "--window", "0"], REFUSED,
     "BadParameter (BAD_PARAMETER)", "--window"),
    ("align-no-reference", ["align", "S1_R1.fastq", "--out", "o.sam"], REFUSED,
     "MissingParameter (MISSING_PARAMETER)", "--reference"),
    ("align-threads-0", ["align", "S1_R1.fastq", "--reference", "ref.fa", "--out", "o.sam", "--threads", "0"],
     REFUSED, "BadParameter (BAD_PARAMETER)", "--threads"),
    ("align-max-insert-0", ["align", "S1_R1.fastq", "--reference", "ref.fa", "--out", "o.sam", "--max-insert", "0"],
     REFUSED, "BadParameter (BAD_PARAMETER)", "--max-insert"),
    ("align-missing-reads", ["align", "absent.fastq", "--reference", "ref.fa", "--out", "o.sam", "--device", "cpu"],
     REFUSED, "InvalidReads (READS_NOT_FOUND)", "absent.fastq"),
    ("align-missing-reference", ["align", "S1_R1.fastq", "--reference", "nope.fa", "--out", "o.sam",
                                 "--device", "cpu"], REFUSED, "InvalidReference (REFERENCE_NOT_FOUND)", "nope.fa"),
    ("cluster-threads-0", ["cluster", "S1_R1.fastq", "--out", "c.tsv", "--threads", "0"], REFUSED,
     "BadParameter (BAD_PARAMETER)", "--threads"),
    ("cluster-bad-device", ["cluster", "S1_R1.fastq", "--out", "c.tsv", "--device", "tpu"], REFUSED,
     "BadParameter (BAD_PARAMETER)", "tpu"),
]


def assert_one_named_line(stderr: str, start: str, fragment: str) -> None:
    assert "Traceback" not in stderr
    # After Ctrl-C click first ends the terminal's "^C" echo with a newline; the failure is still one line.
    lines = stderr.lstrip("\n").splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(start + ": "), lines[0]
    assert fragment in lines[0]


@pytest.mark.parametrize(("argv", "status", "start", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_usage_is_one_named_line_and_a_documented_status(work, argv, status, start, fragment):
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == status, result.output
    assert_one_named_line(result.stderr, start, fragment)
    assert not (work / "state").exists()  # refused before any stack was looked for or started
    assert not (work / "o").exists()


def test_local_status_without_a_stack_exits_3(work):
    result = CliRunner().invoke(main, ["local", "status"])
    assert result.exit_code == ExitCode.STACK_NOT_RUNNING
    assert result.stdout == "local stack: not running\n"


@pytest.mark.parametrize(
    ("raised", "status", "start"),
    [
        (TimeoutError("no finished execution for incoming/S1_R1.fastq after 5 s"), ExitCode.TIMED_OUT,
         "TimedOut (TIMED_OUT)"),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED, "Interrupted (INTERRUPTED)"),
        (OSError(28, "No space left on device"), ExitCode.ENVIRONMENT, "OSError (ENOSPC)"),
        (PermissionError(13, "Permission denied", "/data/S1_R1.fastq"), ExitCode.REFUSED,
         "PermissionError (EACCES)"),
    ],
)
def test_failures_while_running_are_one_named_line(work, monkeypatch, raised, status, start):
    def fail(*args, **kwargs):
        raise raised

    result = _invoke_raising(fail, monkeypatch)
    assert result.exit_code == status
    assert_one_named_line(result.stderr, start, "")


def test_a_missing_checkout_is_an_environment_problem(work, monkeypatch):
    from helixflow_local.stack import repository_root

    def fail(*args, **kwargs):
        repository_root(work)

    result = _invoke_raising(fail, monkeypatch)
    assert result.exit_code == ExitCode.ENVIRONMENT
    assert_one_named_line(result.stderr, "CheckoutNotFound (CHECKOUT_NOT_FOUND)", "HELIXFLOW_HOME")


def test_an_unexpected_error_names_itself_and_where_its_trace_is(work, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("every execution ended without running the sample")

    result = _invoke_raising(fail, monkeypatch)
    assert result.exit_code == ExitCode.INTERNAL
    assert_one_named_line(result.stderr, "InternalError (RuntimeError)", "internal error")
    trace = Path(re.search(r"full trace in (\S+)$", result.stderr.strip())[1])
    assert "Traceback" in trace.read_text() and "every execution ended" in trace.read_text()
    trace.unlink()


def _invoke_raising(fail, monkeypatch):
    """`helixflow validate` with its validator replaced by ``fail``: a command that raises while it runs."""
    monkeypatch.setattr("helixflow_local.commands.validate.validate_fastq", fail)
    return CliRunner().invoke(main, ["validate", "S1_R1.fastq"])


def test_a_real_process_prints_no_traceback(work):
    """Python itself prints a traceback for anything that escapes main(); only a real process shows that."""
    tree = Path(__file__).resolve().parents[3]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tree / "layers/helixflow"), str(tree / "tools"), str(tree), os.environ.get("PYTHONPATH", "")]))

    def helixflow(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", "from helixflow_local.cli import main; main()", *args],
                              capture_output=True, text=True, env=env, cwd=work, timeout=120)

    bad_params = helixflow("run", "S1_R1.fastq", "S1_R2.fastq", "--params", "notjson.json")
    assert bad_params.returncode == ExitCode.REFUSED
    assert_one_named_line(bad_params.stderr, "InvalidParameters (PARAMS_NOT_JSON)", "notjson.json")
    quality = helixflow("preprocess", "S1_R1.fastq", "--out", "o", "--quality", "99")
    assert quality.returncode == ExitCode.REFUSED
    assert_one_named_line(quality.stderr, "BadParameter (BAD_PARAMETER)", "--quality")
    assert helixflow("--help").stdout.count("Exit status:") == 1


def test_help_prints_the_exit_status_table():
    result = CliRunner().invoke(main, ["--help"])
    for code, meaning in MEANING.items():
        assert re.search(rf"^\s+{int(code)}\s+{re.escape(meaning)}$", result.stdout, re.MULTILINE), meaning


def test_readme_exit_status_table_is_the_modules():
    text = README.read_text()
    section = text[text.index("### Exit status"):]
    rows = re.findall(r"^\| `(\d+)` \| (.+?) \|$", section, re.MULTILINE)
    assert {int(code): meaning for code, meaning in rows} == {int(code): meaning for code, meaning in MEANING.items()}
