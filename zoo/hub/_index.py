"""Hub locations, settings, errors and the index format."""

import hashlib
import http.client
import json
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
INDEX_NAME = "index.json"
HUB_RECORD_NAME = "hub.json"
DEFAULT_LICENSE = "Apache-2.0"
# The repository's own hub: zoo/pretrained beside this package.
PACKAGE_HUB = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "pretrained")
RECIPES_PATH = os.path.join(PACKAGE_HUB, "recipes.json")
FILE_KINDS = ("keras", "saved_model")
# Keras picks the loader by extension, and archives are gzip tar files.
_FILE_SUFFIXES = {"keras": ".keras", "saved_model": ".tar.gz"}
TEMPORARY_PREFIX = ".tmp-"
LOCK_SUFFIX = ".lock"
HTTP_TIMEOUT_SECONDS = 60

# Each component of an index path: no leading dot, no separators.
_PATH_COMPONENT = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9._\-]*$")
_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


class HubError(ValueError):
    """A hub, index or artifact is missing, invalid or failed its check."""


class ChecksumError(HubError):
    """A file's sha256 or size differs from the one its index records."""


class OfflineError(HubError):
    """`ZOO_OFFLINE` is set and the request needs the network."""


# --- settings ---------------------------------------------------------------

def default_hub():
    """Return `ZOO_HUB`, else the repository's own hub folder."""
    return os.environ.get("ZOO_HUB") or PACKAGE_HUB


def cache_dir():
    """Return `ZOO_CACHE`, else `$KERAS_HOME/zoo`, else `~/.keras/zoo`.

    Raises:
        HubError: the path exists and is not a folder.
    """
    if os.environ.get("ZOO_CACHE"):
        path = os.path.abspath(os.path.expanduser(os.environ["ZOO_CACHE"]))
    else:
        keras_home = os.environ.get("KERAS_HOME") or os.path.join(
            os.path.expanduser("~"), ".keras")
        path = os.path.abspath(os.path.join(keras_home, "zoo"))
    if os.path.exists(path) and not os.path.isdir(path):
        raise HubError(
            f"The download cache {path!r} exists but is not a folder. Point "
            "ZOO_CACHE at a folder, or move the file away."
        )
    return path


def is_offline():
    """Return whether `ZOO_OFFLINE` is set to 1, true or yes."""
    return os.environ.get("ZOO_OFFLINE", "").strip().lower() in (
        "1", "true", "yes")


# --- hub locations ----------------------------------------------------------

class Hub:
    """A hub location and the way to read its files.

    Args:
        location: Local folder, `file://` URL, `http(s)://` URL or a
            `tf.io.gfile` path such as `gs://bucket/zoo`.

    Attributes:
        location: The location as given, without a trailing `/`.
        kind: `"local"`, `"http"` or `"gfile"`.
        root: The absolute folder of a local hub, else `None`.
    """

    def __init__(self, location):
        if not isinstance(location, (str, os.PathLike)) or not str(location):
            raise HubError(
                "`hub` must be a folder, a file:// or http(s):// URL, or a "
                f"tf.io.gfile path. Received: hub={location!r}"
            )
        location = os.fspath(location)
        parsed = urllib.parse.urlparse(location)
        self.root = None
        if parsed.scheme == "file":
            self.kind = "local"
            self.root = os.path.abspath(
                urllib.request.url2pathname(parsed.path))
        elif parsed.scheme in ("http", "https"):
            self.kind = "http"
        elif "://" in location:
            self.kind = "gfile"
        else:
            self.kind = "local"
            self.root = os.path.abspath(os.path.expanduser(location))
        self.location = location.rstrip("/") if self.root is None else \
            self.root

    def __repr__(self):
        return f"Hub({self.location!r})"

    @property
    def is_remote(self):
        return self.kind != "local"

    def url(self, relative):
        """Return the location of `relative` inside this hub."""
        if self.root is not None:
            return os.path.join(self.root, *relative.split("/"))
        return f"{self.location}/{relative}"

    @property
    def cache_root(self):
        """The cache folder of a remote hub: host and path plus a hash."""
        digest = hashlib.sha256(self.location.encode()).hexdigest()[:12]
        parsed = urllib.parse.urlparse(self.location)
        readable = re.sub(r"[^A-Za-z0-9._\-]+", "_",
                          f"{parsed.netloc}{parsed.path}").strip("_.")
        return os.path.join(cache_dir(), f"{readable[:60]}-{digest}")

    def open(self, relative):
        """Open `relative` for reading; return `(stream, size or None)`.

        Raises:
            HubError: the file is not found or the server returned an
                HTTP error.
            OSError: the network or file system failed; worth a retry.
        """
        location = self.url(relative)
        if self.kind == "local":
            if not os.path.isfile(location):
                raise HubError(f"{location!r} not found in hub {self}.")
            return open(location, "rb"), os.path.getsize(location)
        if self.kind == "http":
            try:
                response = urllib.request.urlopen(
                    location, timeout=HTTP_TIMEOUT_SECONDS)
            except urllib.error.HTTPError as error:
                raise HubError(
                    f"Hub {self.location} returned HTTP {error.code} "
                    f"{error.reason} for {location}. Check the hub URL "
                    "(ZOO_HUB or `hub=`)."
                ) from error
            length = response.headers.get("Content-Length")
            return response, int(length) if length is not None else None
        import tensorflow as tf

        if not tf.io.gfile.exists(location):
            raise HubError(f"{location!r} not found in hub {self}.")
        return tf.io.gfile.GFile(location, "rb"), None


def _transfer_errors(hub):
    """Return the exception types of a failed read from `hub`."""
    errors = (OSError, http.client.HTTPException)
    if hub.kind == "gfile":
        import tensorflow as tf

        errors += (tf.errors.OpError,)
    return errors


def resolve_hub(hub=None):
    """Return the `Hub` of `hub`, else of `ZOO_HUB` or the package hub."""
    if isinstance(hub, Hub):
        return hub
    return Hub(hub if hub is not None else default_hub())


# --- index ------------------------------------------------------------------

def check_relative_path(path, where):
    """Raise `HubError` unless `path` is a safe relative path in a hub.

    A safe path uses `/`, is not absolute, and each component consists of
    letters, digits, `.`, `_` and `-` without a leading dot, so it cannot
    name a parent folder, a hidden file or another drive.
    """
    if not isinstance(path, str) or not path:
        raise HubError(f"{where}: the file path must be a non-empty string. "
                       f"Received: {path!r}")
    components = path.split("/")
    if path.startswith("/") or "\\" in path or any(
            not _PATH_COMPONENT.match(part) for part in components):
        raise HubError(
            f"{where}: file path {path!r} is invalid. Paths in an index must "
            "be relative, use '/', and contain no '..', hidden, absolute or "
            "drive components, so that they stay inside the hub and the "
            "cache. Fix or republish the index."
        )


def _check_entry(name, tag, entry):
    where = f"index entry {name}:{tag}"
    if not isinstance(entry, dict):
        raise HubError(f"{where} must be an object. Received: {entry!r}")
    files = entry.get("files")
    if not isinstance(files, dict) or "keras" not in files:
        raise HubError(f"{where} has no 'files.keras' record. "
                       f"Received: files={files!r}")
    for kind, record in files.items():
        if not isinstance(record, dict):
            raise HubError(f"{where}: files.{kind} must be an object. "
                           f"Received: {record!r}")
        check_relative_path(record.get("path"), f"{where} files.{kind}")
        suffix = _FILE_SUFFIXES.get(kind, "")
        if not record["path"].endswith(suffix):
            raise HubError(f"{where}: files.{kind}.path must end with "
                           f"{suffix!r}. Received: {record['path']!r}")
        if not _SHA256_PATTERN.match(str(record.get("sha256", ""))):
            raise HubError(f"{where}: files.{kind}.sha256 must be 64 "
                           f"lowercase hex digits. Received: "
                           f"{record.get('sha256')!r}")
        size = record.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise HubError(f"{where}: files.{kind}.size must be a "
                           f"non-negative integer. Received: {size!r}")


def check_index(index, source="index"):
    """Raise `HubError` naming the first invalid part of `index`.

    Args:
        index: The parsed `index.json`.
        source: Where the index came from, for messages. Defaults to
            `"index"`.

    Returns:
        `index`, unchanged.
    """
    if not isinstance(index, dict) or index.get("format") != FORMAT_VERSION:
        found = index.get("format") if isinstance(index, dict) else index
        raise HubError(
            f"{source} is not a zoo hub index of format {FORMAT_VERSION}. "
            f"Received: format={found!r}"
        )
    models = index.get("models")
    if not isinstance(models, dict):
        raise HubError(f"{source}: 'models' must be an object. "
                       f"Received: {models!r}")
    for name, tags in models.items():
        check_relative_path(name, f"{source} model name")
        if not isinstance(tags, dict):
            raise HubError(f"{source}: models.{name} must be an object. "
                           f"Received: {tags!r}")
        for tag, entry in tags.items():
            check_relative_path(tag, f"{source} tag of model {name}")
            _check_entry(name, tag, entry)
    return index


def _read_json_bytes(data, source):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HubError(f"{source} is not valid JSON: {error}") from error


def write_json_atomic(path, payload):
    """Write `payload` as JSON through a temporary file and `os.replace`."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(
        folder, f"{TEMPORARY_PREFIX}{uuid.uuid4().hex}-"
        f"{os.path.basename(path)}")
    try:
        with open(temporary, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _fetch_index(hub):
    stream, _ = hub.open(INDEX_NAME)
    with stream:
        return stream.read()


def read_index(hub=None):
    """Read and check the index of `hub`.

    A remote hub's index is fetched and stored in its cache folder. When the
    hub cannot be reached, or `ZOO_OFFLINE` is set, the stored copy is
    used.

    Args:
        hub: Hub location or `Hub`. Defaults to `ZOO_HUB`, else the
            repository's hub.

    Returns:
        The index as a dict.

    Raises:
        HubError: the index is missing or invalid.
        OfflineError: offline (or unreachable) with no stored copy.
    """
    hub = resolve_hub(hub)
    source = f"index of hub {hub.location}"
    if not hub.is_remote:
        path = hub.url(INDEX_NAME)
        if not os.path.isfile(path):
            raise HubError(
                f"Hub {hub.location} has no {INDEX_NAME}. Point ZOO_HUB or "
                "`hub=` at a folder made by `zoo publish` or `zoo prefetch`."
            )
        with open(path, "rb") as handle:
            return check_index(_read_json_bytes(handle.read(), source),
                               source)

    stored = os.path.join(hub.cache_root, INDEX_NAME)
    if is_offline():
        return _stored_index(hub, stored, "ZOO_OFFLINE is set")
    try:
        data = _fetch_index(hub)
        index = check_index(_read_json_bytes(data, source), source)
    except _transfer_errors(hub) as error:
        if os.path.isfile(stored):
            logger.warning("Hub %s is unreachable (%s); using the cached "
                           "index.", hub.location, error)
        return _stored_index(hub, stored, f"the hub is unreachable: {error}")
    except HubError as error:
        # An HTTP error or a page that is not the index (a proxy's login
        # page) is likely passing; a stored index still verifies the files.
        if not os.path.isfile(stored):
            raise
        logger.warning("Hub %s returned no valid index (%s); using the "
                       "cached index.", hub.location, error)
        return _stored_index(hub, stored, f"the hub failed: {error}")
    write_json_atomic(os.path.join(hub.cache_root, HUB_RECORD_NAME),
                      {"location": hub.location})
    write_json_atomic(stored, index)
    return index


def _stored_index(hub, stored, reason):
    if not os.path.isfile(stored):
        raise OfflineError(
            f"The index of hub {hub.location} is not in the cache "
            f"{cache_dir()} and {reason}. Download the weights once with "
            "network access (`zoo download NAME --weights TAG`), or use a "
            "folder made by `zoo prefetch` as ZOO_HUB."
        )
    with open(stored, "rb") as handle:
        source = f"cached index of hub {hub.location}"
        return check_index(_read_json_bytes(handle.read(), source), source)


def get_entry(name, tag, hub=None):
    """Return `(hub, entry)` of model `name` with weights `tag`.

    Raises:
        HubError: the hub has no such model or tag; the message lists the
            tags it has.
    """
    hub = resolve_hub(hub)
    try:
        index = read_index(hub)
    except OfflineError as error:
        raise OfflineError(f"Weights {name}:{tag} are unavailable: "
                           f"{error}") from error
    tags = index["models"].get(name, {})
    if tag not in tags:
        available = ", ".join(f"{name}:{t}" for t in sorted(tags)) or \
            "none for this model"
        raise HubError(
            f"Weights {name}:{tag} not found in hub {hub.location}. "
            f"Available: {available}. Run `zoo list --pretrained` to see "
            "models with weights."
        )
    return hub, tags[tag]
