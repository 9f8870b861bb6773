"""Child process of the database-loss test: `python annotate_paused.py DATASET FILE... -- CLI ARGS`.

Creates DATASET from the files (in the database FIFTYONE_DATABASE_URI names) unless it exists, then runs the
real CLI. After the first write of labels it prints "saved N" and waits for a line on stdin, so the parent
can kill mongod at exactly that point.
"""
import os
import sys

import fiftyone as fo

from fiftyone_mslite.cli import main
from fiftyone_mslite.integration import writer

name, rest = sys.argv[1], sys.argv[2:]
cut = rest.index("--")
if not fo.dataset_exists(name):
    dataset = fo.Dataset(name, persistent=True)
    dataset.add_samples([fo.Sample(filepath=path) for path in rest[:cut]])

flush, paused = writer.LabelWriter.flush, []


def flush_then_pause(self, force=True):
    flush(self, force)
    if self.saved and not paused:
        paused.append(True)
        os.write(1, f"\nsaved {self.saved}\n".encode())  # past the progress bar's capture of sys.stdout
        sys.stdin.readline()


writer.LabelWriter.flush = flush_then_pause
writer.FLUSH_EVERY = 4
main(rest[cut + 1:])
