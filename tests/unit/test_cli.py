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
