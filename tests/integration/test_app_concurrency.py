"""Two App runs at once (issue 20, item 6): `apply_model` twice on the same field of one dataset, at the same time,
ends with every sample labeled once, as one sequential run labels it; neither run fails with a traceback."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

APPLY = "@fiftyone-mslite/mslite/apply_model"


@pytest.fixture
def dataset(tmp_path, tiny_model):
    import fiftyone as fo

    from fiftyone_mslite.integration.zoo import install_plugin

    install_plugin()
    rng = np.random.default_rng(3)
    samples = []
    for i in range(24):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (16, 20, 3), dtype=np.uint8)).save(path)
        samples.append(fo.Sample(filepath=str(path)))
    ds = fo.Dataset()
    ds.add_samples(samples)
    yield ds
    ds.delete()


def execute(dataset, field: str):
    import fiftyone.operators as foo

    return foo.execute_operator(APPLY, ctx={"dataset": dataset.name, "params": {"model": "tiny", "label_field": field,
                                                                              "batch_size": 2}})


def test_two_concurrent_runs_on_one_field(dataset):
    """The field lock decides: one run labels the field; the other ends, if it collides, in FieldLockedError's one
    line (which the App shows), and what is written equals what one run alone writes."""
    execute(dataset, "reference")
    outcomes: list = [None, None]

    def worker(i: int) -> None:
        try:
            outcomes[i] = execute(dataset, "together")
        except Exception as exc:  # FiftyOne raises the operator's error as an ExecutionError
            outcomes[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    failures = [o for o in outcomes if isinstance(o, Exception) or getattr(o, "error", None)]
    assert all(o is not None for o in outcomes) and len(failures) < 2, outcomes
    for failure in failures:
        assert "FieldLockedError: field 'together'" in str(failure) and "is being written by another" in str(failure)
    dataset.reload()
    assert dataset.count("together") == len(dataset)
    assert dataset.values("together.label") == dataset.values("reference.label")
