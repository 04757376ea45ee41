"""Verification of hub files and downloads into the cache."""

import contextlib
import hashlib
import logging
import os
import sys
import time
import uuid

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no fcntl
    fcntl = None

from zoo.hub._index import FILE_KINDS
from zoo.hub._index import LOCK_SUFFIX
from zoo.hub._index import TEMPORARY_PREFIX
from zoo.hub._index import ChecksumError
from zoo.hub._index import HubError
from zoo.hub._index import OfflineError
from zoo.hub._index import _transfer_errors
from zoo.hub._index import check_relative_path
from zoo.hub._index import get_entry
from zoo.hub._index import is_offline

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
DOWNLOAD_ATTEMPTS = 3
RETRY_DELAY_SECONDS = 1.0


def sha256_file(path):
    """Return the hex sha256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path, record):
    """Raise `ChecksumError` unless `path` has the record's size and sha256."""
    size = os.path.getsize(path)
    if size != record["size"]:
        raise ChecksumError(
            f"{path!r} has {size} bytes but the index records "
            f"{record['size']}."
        )
    digest = sha256_file(path)
    if digest != record["sha256"]:
        raise ChecksumError(
            f"{path!r} has sha256 {digest} but the index records "
            f"{record['sha256']}."
        )


def _inside(path, folder):
    path = os.path.realpath(path)
    folder = os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


@contextlib.contextmanager
def _file_lock(path):
    # An advisory lock beside the target, so one process downloads while
    # the others wait and then find the finished file.
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(path + LOCK_SUFFIX, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _progress_bar(size, label):
    # Keras' progress bar writes to stdout, so show it only on a terminal.
    if size is None or not sys.stdout.isatty():
        return None
    import keras

    logger.info("Downloading %s", label)
    return keras.utils.Progbar(size, unit_name="B")


def _download_once(hub, record, target):
    folder = os.path.dirname(target)
    temporary = os.path.join(
        folder, f"{TEMPORARY_PREFIX}{uuid.uuid4().hex}-"
        f"{os.path.basename(target)}")
    try:
        stream, size = hub.open(record["path"])
        progress = _progress_bar(size or record["size"], record["path"])
        received = 0
        digest = hashlib.sha256()
        with stream, open(temporary, "wb") as handle:
            while True:
                chunk = stream.read(CHUNK_SIZE)
                if not chunk:
                    break
                received += len(chunk)
                if received > record["size"]:
                    # Stop early: a server must not fill the disk.
                    raise ChecksumError(
                        f"{hub.url(record['path'])} is longer than the "
                        f"{record['size']} bytes its index records; "
                        "nothing was stored or loaded.")
                handle.write(chunk)
                digest.update(chunk)
                if progress is not None:
                    progress.update(received)
        if received != record["size"]:
            raise OSError(
                f"Download of {hub.url(record['path'])} stopped at "
                f"{received} of {record['size']} bytes."
            )
        if digest.hexdigest() != record["sha256"]:
            raise ChecksumError(
                f"{hub.url(record['path'])} has sha256 {digest.hexdigest()} "
                f"but the index of hub {hub.location} records "
                f"{record['sha256']}. The hub serves a different file than "
                "its index describes; nothing was stored or loaded."
            )
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def fetch_file(hub, record, label):
    """Fetch a hub file and return its local path, verified against `record`.

    A local hub's file is checked in place. A remote hub's file is taken
    from the cache when it passes the check, else downloaded again (up to
    `DOWNLOAD_ATTEMPTS` tries on network errors).

    Args:
        hub: A `Hub`.
        record: The index record `{"path", "sha256", "size"}`.
        label: Name of the artifact for messages, such as `"cnn:digits"`.

    Returns:
        The path of the verified local file.

    Raises:
        ChecksumError: the file differs from its record.
        OfflineError: offline and the file is not in the cache.
        HubError: the download failed on every attempt.
    """
    check_relative_path(record["path"], label)
    if not hub.is_remote:
        path = hub.url(record["path"])
        if not _inside(path, hub.root):
            raise HubError(f"{label}: {path!r} resolves outside hub "
                           f"{hub.location} (a symbolic link?).")
        if not os.path.isfile(path):
            raise HubError(f"{label}: {path!r} not found in hub "
                           f"{hub.location}.")
        verify_file(path, record)
        return path

    root = hub.cache_root
    target = os.path.join(root, *record["path"].split("/"))
    if not _inside(target, root):
        raise HubError(f"{label}: {target!r} resolves outside the cache "
                       f"folder {root!r}.")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with _file_lock(target):
        if os.path.isfile(target):
            try:
                verify_file(target, record)
                return target
            except ChecksumError as error:
                logger.warning("Cached file failed its check, downloading "
                               "it again: %s", error)
                os.remove(target)
        if is_offline():
            raise OfflineError(
                f"Artifact {label} ({record['path']}) from hub "
                f"{hub.location} is not in the cache {root} and ZOO_OFFLINE "
                "is set. Unset ZOO_OFFLINE on a machine with network access, "
                "or copy a `zoo prefetch` folder here and set ZOO_HUB to it."
            )
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                _download_once(hub, record, target)
                return target
            except _transfer_errors(hub) as error:
                logger.warning("Download of %s from %s failed (attempt "
                               "%d of %d): %s", label, hub.location, attempt,
                               DOWNLOAD_ATTEMPTS, error)
                if attempt == DOWNLOAD_ATTEMPTS:
                    raise HubError(
                        f"Download of {label} ({hub.url(record['path'])}) "
                        f"failed {DOWNLOAD_ATTEMPTS} times, last with: "
                        f"{error}. Check the network and the hub, then run "
                        "again; nothing partial was kept."
                    ) from error
                time.sleep(RETRY_DELAY_SECONDS * attempt)


def download(name, tag, hub=None, kinds=FILE_KINDS):
    """Download (or check in place) the artifacts of `name:tag`.

    Args:
        name: Registered model name.
        tag: Weights tag, such as `"digits"`.
        hub: Hub location or `Hub`. Defaults to `ZOO_HUB`, else the
            repository's hub.
        kinds: File kinds to fetch. Defaults to `("keras", "saved_model")`;
            kinds the entry lacks are skipped.

    Returns:
        A dict of file kind to verified local path.
    """
    hub, entry = get_entry(name, tag, hub)
    paths = {}
    for kind in kinds:
        if kind in entry["files"]:
            paths[kind] = fetch_file(hub, entry["files"][kind],
                                     f"{name}:{tag} {kind}")
    return paths
