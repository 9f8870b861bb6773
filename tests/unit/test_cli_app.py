"""`fiftyone-mslite app` (issue 13, item 21): the App listens on this machine only unless asked otherwise.

FiftyOne's launch is replaced by a recorder, so no App server or database starts.
"""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from fiftyone_mslite import cli


@pytest.fixture()
def launched(monkeypatch) -> dict:
    import fiftyone as fo

    calls: dict = {}

    class Session:
        url = "http://localhost:5151/"

        def wait(self, timeout) -> None:
            pass

    def launch_app(dataset, **kwargs):
        calls.update(kwargs)
        return Session()

    monkeypatch.setattr(cli, "_load_dataset", lambda name: None)
    monkeypatch.setattr(fo, "load_dataset", lambda name: None)
    monkeypatch.setattr(fo, "launch_app", launch_app)
    return calls


@pytest.mark.parametrize("args, address", [([], "127.0.0.1"), (["--address", "0.0.0.0"], "0.0.0.0")])
def test_app_listens_on_localhost_unless_told(launched, args, address):
    result = CliRunner().invoke(cli.main, ["app", "--dataset", "d", *args])
    assert result.exit_code == 0, result.output
    assert launched["address"] == address and launched["port"] == 5151
