"""SavedModel archives: safe extraction and reproducible writing."""

import gzip
import logging
import os
import re
import shutil
import tarfile
import tempfile

from zoo.hub._download import _inside
from zoo.hub._download import fetch_file
from zoo.hub._index import TEMPORARY_PREFIX
from zoo.hub._index import HubError
from zoo.hub._index import get_entry

logger = logging.getLogger(__name__)


def _reject_member(archive, member, reason):
    raise HubError(
        f"Archive {archive!r} has member {member.name!r} {reason}. Only "
        "plain files and folders inside the target are allowed; the "
        "archive was not extracted."
    )


def safe_extract(archive, target):
    """Extract a `.tar.gz` archive into the new folder `target`.

    Every member is checked before anything is written: absolute names,
    `..` components, and links, devices and other special members are
    rejected. The archive is extracted into a temporary folder beside
    `target` and renamed into place.

    Args:
        archive: Path of the `.tar.gz` file.
        target: Folder to create. It must not exist.

    Returns:
        `target`.

    Raises:
        HubError: a member is unsafe, or `target` exists.
    """
    if os.path.exists(target):
        raise HubError(f"Extraction target {target!r} already exists. "
                       "Remove it or pick another folder.")
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix=TEMPORARY_PREFIX, dir=parent)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                name = member.name
                if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:",
                                                            name):
                    _reject_member(archive, member, "with an absolute path")
                if ".." in re.split(r"[/\\]", name):
                    _reject_member(archive, member, "with a '..' component")
                if not (member.isfile() or member.isdir()):
                    _reject_member(archive, member,
                                   "that is a link or special file")
                if not _inside(os.path.join(temporary, name), temporary):
                    _reject_member(archive, member, "outside the target")
            # The "data" filter repeats these checks where Python has it
            # (3.10.12+, 3.11.4+).
            options = {"filter": "data"} if hasattr(
                tarfile, "data_filter") else {}
            tar.extractall(temporary, members=members, **options)
        os.rename(temporary, target)
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
    return target


def extract_saved_model(name, tag, base_dir, hub=None, version=None):
    """Extract the SavedModel of `name:tag` as `base_dir/<name>/<version>`.

    Args:
        name: Registered model name.
        tag: Weights tag.
        base_dir: Parent of the TF Serving base path, such as
            `"saved_models"`.
        hub: Hub location or `Hub`. Defaults to `ZOO_HUB`, else the
            repository's hub.
        version: Version number. Defaults to the next free one.

    Returns:
        The version folder.
    """
    from zoo import export

    hub, entry = get_entry(name, tag, hub)
    if "saved_model" not in entry["files"]:
        raise HubError(f"{name}:{tag} in hub {hub.location} has no "
                       "SavedModel archive. Export one from the Keras file "
                       f"with `zoo export {name} --weights {tag}`.")
    archive = fetch_file(hub, entry["files"]["saved_model"],
                         f"{name}:{tag} saved_model")
    model_base = os.path.join(base_dir, name)
    if version is None:
        version = export.next_version(model_base)
    elif not isinstance(version, int) or version < 1:
        raise ValueError(
            f"`version` must be a positive integer. Received: {version!r}")
    target = safe_extract(archive, os.path.join(model_base, str(version)))
    if not os.path.isfile(os.path.join(target, "saved_model.pb")):
        shutil.rmtree(target)
        raise HubError(f"The SavedModel archive of {name}:{tag} has no "
                       "saved_model.pb at its root.")
    return target


def _write_tar_gz(folder, path):
    # Fixed times, owners and order, so equal SavedModels give equal bytes.
    with open(path, "wb") as raw, gzip.GzipFile(
            fileobj=raw, mode="wb", mtime=0, filename="") as compressed, \
            tarfile.open(fileobj=compressed, mode="w") as tar:
        for current, folders, files in os.walk(folder):
            folders.sort()
            for entry in sorted(folders) + sorted(files):
                full = os.path.join(current, entry)
                info = tar.gettarinfo(full, os.path.relpath(full, folder))
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o755 if info.isdir() else 0o644
                if info.isfile():
                    with open(full, "rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
