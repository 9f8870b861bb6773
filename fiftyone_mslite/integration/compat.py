"""Every use of FiftyOne's private API, in one place, so that a FiftyOne upgrade is checked here alone.

Checked against fiftyone 1.22.1 (tests/integration exercise each function through the code that uses it).
Each exists because FiftyOne has no public equivalent for what it does.
"""
from __future__ import annotations

from collections.abc import Iterator

import fiftyone as fo
import fiftyone.core.odm as foo
import fiftyone.core.sample as fos
import fiftyone.core.view as fov

CHECKED_WITH = "1.22.1"


def root_dataset(samples) -> fo.Dataset:
    """The dataset a collection (dataset or view) belongs to: where fields, runs and saved views live."""
    return samples._dataset


def is_generated(samples) -> bool:
    """Patches/frames/clips views: their fields live in a temporary dataset, not in the source one."""
    return bool(samples._is_generated)


def stages_with_input(view: fov.DatasetView) -> Iterator[tuple[fov.DatasetView, object]]:
    """Each stage of a view with the view it is applied to (to ask a stage which fields it selects)."""
    current = view._base_view
    for stage in view._stages:
        yield current, stage
        current = current._add_view_stage(stage, validate=False)


def update_samples(dataset: fo.Dataset, ops: list, ids: list[str]) -> None:
    """Bulk `UpdateOne`s on the dataset's samples in ONE round trip, then the in-memory `Sample`s of those ids
    reloaded, as `set_values` does after its own write. `set_values` writes one field per call, through FiftyOne's
    default latency batcher, which starts every call at batch sizes 1, 8, 64: 4 round trips per field for 256
    samples."""
    foo.bulk_write(ops, dataset._sample_collection, ordered=False, batcher=False)
    fos.Sample._reload_docs(dataset._sample_collection_name, sample_ids=ids)
