"""Listing, verifying and pruning the download cache."""

import json
import logging
import os
import shutil

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no fcntl
    fcntl = None

from zoo.hub._download import verify_file
from zoo.hub._index import HUB_RECORD_NAME
from zoo.hub._index import INDEX_NAME
from zoo.hub._index import LOCK_SUFFIX
from zoo.hub._index import ChecksumError
from zoo.hub._index import _read_json_bytes
from zoo.hub._index import cache_dir
from zoo.hub._index import check_index

logger = logging.getLogger(__name__)


def _cached_hubs():
    root = cache_dir()
    if not os.path.isdir(root):
        return []
    hubs = []
    for entry in sorted(os.listdir(root)):
        record = os.path.join(root, entry, HUB_RECORD_NAME)
        if os.path.isfile(record):
            with open(record) as handle:
                hubs.append((os.path.join(root, entry),
                             json.load(handle).get("location", entry)))
    return hubs


def cache_entries():
    """List the artifacts in the cache.

    Returns:
        A list of dicts with `hub`, `model`, `tag`, `kind`, `path` and the
        recorded `size` and `sha256`, one per cached file.
    """
    rows = []
    for folder, location in _cached_hubs():
        index_path = os.path.join(folder, INDEX_NAME)
        if not os.path.isfile(index_path):
            continue
        with open(index_path, "rb") as handle:
            index = check_index(_read_json_bytes(handle.read(), index_path),
                                index_path)
        for name, tags in sorted(index["models"].items()):
            for tag, entry in sorted(tags.items()):
                for kind, record in sorted(entry["files"].items()):
                    path = os.path.join(folder, *record["path"].split("/"))
                    if os.path.isfile(path):
                        rows.append({"hub": location, "model": name,
                                     "tag": tag, "kind": kind, "path": path,
                                     "size": record["size"],
                                     "sha256": record["sha256"]})
    return rows


def verify_cache():
    """Check every cached artifact against its index record.

    Returns:
        The rows of `cache_entries()`, each with `ok` (bool) and `error`.
    """
    rows = []
    for row in cache_entries():
        try:
            verify_file(row["path"], row)
            row.update(ok=True, error=None)
        except ChecksumError as error:
            row.update(ok=False, error=str(error))
        rows.append(row)
    return rows


def prune_cache(everything=False):
    """Remove unneeded files from the cache.

    Removes leftover temporary files, free lock files, cached artifacts
    that fail their check, and files that the cached index no longer
    lists. Only folders with a hub record (`hub.json`) are touched, so a
    `ZOO_CACHE` that points at a shared folder loses nothing else.

    Args:
        everything: Remove every cached hub folder. Defaults to `False`.

    Returns:
        The list of removed paths.
    """
    hubs = _cached_hubs()
    if everything:
        for folder, _ in hubs:
            shutil.rmtree(folder)
        return [folder for folder, _ in hubs]
    keep = {os.path.join(folder, name) for folder, _ in hubs
            for name in (INDEX_NAME, HUB_RECORD_NAME)}
    keep.update(row["path"] for row in verify_cache() if row["ok"])
    removed = []
    for hub_folder, _ in hubs:
        for folder, _, files in os.walk(hub_folder, topdown=False):
            for name in files:
                path = os.path.join(folder, name)
                if path in keep:
                    continue
                if name.endswith(LOCK_SUFFIX) and not _lock_is_free(path):
                    continue
                os.remove(path)
                removed.append(path)
            if folder != hub_folder and not os.listdir(folder):
                os.rmdir(folder)
    return removed


def _lock_is_free(path):
    if fcntl is None:  # pragma: no cover
        return True
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True
