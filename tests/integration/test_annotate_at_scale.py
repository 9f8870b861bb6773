"""annotate() on datasets mostly done already: a resume reads what is left, not every sample (real FiftyOne +
MongoDB + MindSpore Lite worker). benchmarks/scale.py measures the same at 100k samples."""
import fiftyone as fo
import fiftyone.core.collections as foc
import numpy as np
from PIL import Image

from fiftyone_mslite.integration.annotation import annotate
from fiftyone_mslite.integration.model import load_model


def _reads(monkeypatch) -> list[int]:
    """Rows returned by every `values()` call on any collection from now on (one figure per call)."""
    rows: list[int] = []
    values = foc.SampleCollection.values

    def counting(self, field_or_expr, *args, **kwargs):
        out = values(self, field_or_expr, *args, **kwargs)
        rows.append(len(out[0]) if isinstance(field_or_expr, (list, tuple)) and out else len(out))
        return out

    monkeypatch.setattr(foc.SampleCollection, "values", counting)
    return rows


def test_resume_reads_only_the_samples_left(tiny_model, tmp_path, monkeypatch):
    image = tmp_path / "a.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(image)
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=str(image)) for _ in range(300)])
    with load_model(tiny_model) as model:
        first = annotate(ds, model, "pred", batch_size=32, progress=False)
        left = ds.skip(297)
        left.set_field("pred_run", None).save()  # as if killed before the last digests were written
        rows = _reads(monkeypatch)
        resumed = annotate(ds, model, "pred", batch_size=32, progress=False)
        monkeypatch.undo()
        nothing = _reads(monkeypatch)
        again = annotate(ds, model, "pred", batch_size=32, progress=False)
    assert (first.processed, resumed.skipped, resumed.processed) == (300, 297, 3)
    assert (again.skipped, again.processed) == (300, 0)
    digest = ds.first().pred_run
    assert digest and ds.count_values("pred_run") == {digest: 300}
    assert rows and max(rows) == 3  # the ids and paths of the 3 samples left, never one row per sample done
    assert max(nothing, default=0) == 0


def test_resume_of_a_view_keeps_its_order_and_skips_what_is_done(tiny_model, tmp_path):
    images = []
    for k in range(3):
        images.append(tmp_path / f"{k}.jpg")
        Image.fromarray(np.full((16, 16, 3), 80 * k, np.uint8)).save(images[-1])
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=str(images[i % 3])) for i in range(30)])
    view = ds.skip(5).limit(20)
    with load_model(tiny_model) as model:
        annotate(view.limit(8), model, "pred", batch_size=4, progress=False)
        ds.select(view.skip(2).limit(1).values("id")).set_field("pred", None).save()  # one label lost
        resumed = annotate(view, model, "pred", batch_size=4, progress=False)
        fresh = annotate(view, model, "fresh", batch_size=4, progress=False)
    assert (resumed.skipped, resumed.processed) == (7, 13)
    assert view.values("pred.label") == view.values("fresh.label") and fresh.processed == 20
    assert ds.limit(5).count("pred") == 0 and ds.skip(25).count("pred") == 0  # outside the view: untouched
