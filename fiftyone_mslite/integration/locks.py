"""One writer per label field: an atomic claim in FiftyOne's database, so that two `annotate` runs on the same
field cannot both report success while one's labels silently replace the other's.

A claim is one document in `LOCKS` (id: dataset name + field) holding its owner, a heartbeat and an expiry, all
in the server's clock (`$$NOW`), so hosts with skewed clocks agree. It is taken in one atomic update (only if
absent or expired), renewed by a heartbeat thread and deleted on release. A crashed owner's claim expires
`TTL_S` after its last heartbeat; one left by a dead process on this host is taken over at once, so resuming
after a SIGKILL needs no wait.
"""
from __future__ import annotations

import os
import socket
import threading
import uuid
from types import TracebackType
from typing import Any

import fiftyone.core.odm as foo
import psutil
import pymongo
import pymongo.errors

from ..errors import FieldLockedError

LOCKS = "fiftyone_mslite_locks"
TTL_S = 60
HEARTBEAT_S = 10


def _process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


class FieldLock:
    """Exclusive right to write `label_field` of `dataset_name` (a context manager)."""

    def __init__(self, dataset_name: str, label_field: str):
        self.key = f"{dataset_name}:{label_field}"
        self.dataset_name, self.label_field = dataset_name, label_field
        self.owner = uuid.uuid4().hex
        self.lost = False  # set when the heartbeat finds the claim gone (taken over after a long stall)
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def _locks(self) -> pymongo.collection.Collection:
        return foo.get_db_conn()[LOCKS]

    def _claim(self) -> dict[str, Any]:
        """Take the claim if it is free or expired; return the claim document as it stands after the update."""
        mine = {"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                "pid_started": _process_started(os.getpid())}
        new = {**{k: {"$literal": v} for k, v in mine.items()}, "started": "$$NOW", "heartbeat": "$$NOW",
               "expires": {"$add": ["$$NOW", TTL_S * 1000]}}
        update = [{"$set": {"_free": {"$not": [{"$gt": ["$expires", "$$NOW"]}]}}},
                  {"$set": {k: {"$cond": ["$_free", v, "$" + k]} for k, v in new.items()}},
                  {"$unset": "_free"}]
        for attempt in (1, 2):  # two first claims at once: one insert wins, the other sees its document
            try:
                return self._locks.find_one_and_update({"_id": self.key}, update, upsert=True,
                                                       return_document=pymongo.ReturnDocument.AFTER)
            except pymongo.errors.DuplicateKeyError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _dead_here(self, claim: dict[str, Any]) -> bool:
        """The claim's owner was a process on this host that no longer runs (killed, crashed)."""
        if claim.get("host") != socket.gethostname():
            return False
        started = _process_started(claim.get("pid", -1))
        return started is None or started != claim.get("pid_started")

    def acquire(self) -> None:
        claim = self._claim()
        if claim["owner"] != self.owner and self._dead_here(claim):
            self._locks.delete_one({"_id": self.key, "owner": claim["owner"]})
            claim = self._claim()
        if claim["owner"] != self.owner:
            raise FieldLockedError(
                f"field '{self.label_field}' of dataset '{self.dataset_name}' is being written by another annotate "
                f"run (pid {claim.get('pid')} on {claim.get('host')}, since {claim.get('started')} UTC)"
                f"; wait for it to finish or use another field. A crashed run's claim expires {TTL_S} s after "
                "its last heartbeat.")
        self._heartbeat = threading.Thread(target=self._beat, name="mslite-field-lock", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                with pymongo.timeout(HEARTBEAT_S):
                    kept = self._locks.update_one(
                        {"_id": self.key, "owner": self.owner},
                        [{"$set": {"heartbeat": "$$NOW", "expires": {"$add": ["$$NOW", TTL_S * 1000]}}}])
                self.lost = self.lost or kept.matched_count == 0
            except pymongo.errors.PyMongoError:
                pass  # a lost database is reported by the writes; the claim then expires on its own

    def check(self) -> None:
        """Raise if another run took the claim over (this one stalled beyond TTL_S)."""
        if self.lost:
            raise FieldLockedError(f"field '{self.label_field}' of dataset '{self.dataset_name}' was claimed by "
                                   f"another annotate run while this one stalled for over {TTL_S} s; stopped")

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        try:
            with pymongo.timeout(5):
                self._locks.delete_one({"_id": self.key, "owner": self.owner})
        except pymongo.errors.PyMongoError:
            pass  # database gone: the claim expires on its own

    def __enter__(self) -> FieldLock:
        self.acquire()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.release()
