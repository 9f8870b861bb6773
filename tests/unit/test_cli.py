"""The runtime-level CLI: runtime install/info, convert, predict on model files; quiet by default."""
from __future__ import annotations

import json

import pytest
from helpers.cli import cli


def test_runtime_install_without_python37_says_how_to_fix(tmp_path):
    result = cli("runtime", "install", "--json", FIFTYONE_MSLITE_HOME=str(tmp_path),
                 FIFTYONE_MSLITE_PYTHON37=str(tmp_path / "no-python3.7"))
    assert result.returncode == 1
    message = json.loads(result.stdout)["message"]
    assert "no-python3.7" in message and "FIFTYONE_MSLITE_PYTHON37" in message




@pytest.mark.parametrize("args, message", [
    (["predict", "nope.ms", "x.jpg", "--labels", "imagenet-1000"], "model file not found: nope.ms"),
    (["convert", "/etc/hostname", "-o", "x.ms"], "cannot tell the format"),
])
def test_cli_errors_are_one_clear_line(args, message, tmp_path):
    result = cli(*args)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def served_404(http_root):
    """A loopback server where every label file is missing (404) and one URL redirects to itself."""
    return http_root[1]


def test_user_errors_never_print_a_traceback(tmp_path, served_404):
    bad_catalog = tmp_path / "user.yaml"
    bad_catalog.write_text("models: [not, a, mapping\n")
    junk = tmp_path / "x.onnx"
    junk.write_bytes(b"\x08\x07junk")
    cases = [
        (["models", "add", "m", "--source", str(junk), "--labels", "imagenet-1000x"], {}),
        (["predict", "coral-mobilenet-v2-quant", "x.jpg", "--labels", "/missing.txt"], {}),
        (["predict", "coral-mobilenet-v2-quant", "x.jpg", "--labels", f"{served_404}/labels.txt"], {}),
        (["models", "list"], {"FIFTYONE_MSLITE_USER_CATALOG": str(bad_catalog)}),
        (["models", "info", "ghostnet"], {"FIFTYONE_MSLITE_USER_CATALOG": str(bad_catalog)}),
    ]
    for args, env in cases:
        run = cli(*args, env={"FIFTYONE_MSLITE_OFFLINE": "0", **env})
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        assert "Traceback" not in run.stderr and run.stderr.startswith("error: "), (args, run.stderr)
        assert run.stderr.count("\n") <= 3, run.stderr  # a message, not a dump
        as_json = cli(*args, "--json", env=env)
        assert as_json.returncode == 1 and set(json.loads(as_json.stdout)) == {"error", "message"}, args


@pytest.fixture
def runtime_info_raises(monkeypatch):
    """`runtime info` raising what the test sets: a stand-in for a bug or a Ctrl-C anywhere in a command."""
    from fiftyone_mslite import runtime

    raised: list[BaseException] = []

    def info():
        raise raised[0]

    monkeypatch.setattr(runtime, "info", info)
    return raised.append


def test_unexpected_error_is_one_line_and_says_how_to_report_it(runtime_info_raises):
    from click.testing import CliRunner

    from fiftyone_mslite.cli import main

    runtime_info_raises(KeyError("boom"))
    result = CliRunner().invoke(main, ["runtime", "info"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: unexpected KeyError (test_cli.py:") and "'boom'" in line
    assert line.endswith("rerun with `--traceback` and report it")
    as_json = CliRunner().invoke(main, ["runtime", "info", "--json"])
    data = json.loads(as_json.output)
    assert as_json.exit_code == 1 and data["error"] == "KeyError" and "--traceback" in data["message"]
    shown = CliRunner().invoke(main, ["--traceback", "runtime", "info"])
    assert isinstance(shown.exception, KeyError)  # let through: the real CLI prints its full traceback


def test_traceback_flag_prints_the_traceback_in_a_real_process(tmp_path):
    plain = cli("convert", "/etc/hostname", "-o", str(tmp_path / "x.ms"))
    full = cli("--traceback", "convert", "/etc/hostname", "-o", str(tmp_path / "x.ms"))
    assert plain.returncode == full.returncode == 1 and "Traceback" not in plain.stderr
    assert "Traceback (most recent call last)" in full.stderr and "cannot tell the format" in full.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_exits_130_whatever_the_command(runtime_info_raises, as_json):
    from click.testing import CliRunner

    from fiftyone_mslite.cli import main

    runtime_info_raises(KeyboardInterrupt())
    result = CliRunner().invoke(main, ["runtime", "info", *(["--json"] if as_json else [])])
    assert result.exit_code == 130 and "Aborted" not in result.output
    if as_json:
        assert json.loads(result.output) == {"error": "Interrupted", "message": "interrupted"}
    else:
        assert result.output.strip() == "interrupted"
