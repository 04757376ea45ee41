"""Pretrained hub: publish, download, verify, cache and load weights.

A hub is a folder with an `index.json` and artifact files. It can be a
local folder, a `file://` URL, an `http(s)://` URL or any path that
`tf.io.gfile` reads (`gs://...`). The index records, per model and weights
tag, each file's relative path, sha256 and size, the data set, split and
metrics, the `zoo train` command that reproduces it, the Keras and
TensorFlow versions and the license of the weights.

Local hubs are read in place. Remote hubs are downloaded into the cache
(`ZOO_CACHE`, else `$KERAS_HOME/zoo`, else `~/.keras/zoo`) through a
temporary file that is checked against the index and then renamed into
place. No file is loaded before its sha256 and size match the index, and
`.keras` files load with Keras' safe mode.

Example:

```python
import zoo

model = zoo.get_model("cnn", weights="digits")
```
"""

import contextlib
import datetime
import gzip
import hashlib
import http.client
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no fcntl
    fcntl = None

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
INDEX_NAME = "index.json"
HUB_RECORD_NAME = "hub.json"
DEFAULT_LICENSE = "Apache-2.0"
PACKAGE_HUB = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "pretrained")
RECIPES_PATH = os.path.join(PACKAGE_HUB, "recipes.json")
FILE_KINDS = ("keras", "saved_model")
# Keras picks the loader by extension, and archives are gzip tar files.
_FILE_SUFFIXES = {"keras": ".keras", "saved_model": ".tar.gz"}
TEMPORARY_PREFIX = ".tmp-"
LOCK_SUFFIX = ".lock"
CHUNK_SIZE = 1 << 20
HTTP_TIMEOUT_SECONDS = 60
DOWNLOAD_ATTEMPTS = 3
RETRY_DELAY_SECONDS = 1.0

# Each component of an index path: no leading dot, no separators.
_PATH_COMPONENT = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9._\-]*$")
_TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._\-]*$")
_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# Options of `zoo train` that `rebuild` sets itself.
_RESERVED_TRAIN_OPTIONS = ("--run-dir", "--no-export", "--base")


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
    """Return `ZOO_CACHE`, else `$KERAS_HOME/zoo`, else `~/.keras/zoo`."""
    if os.environ.get("ZOO_CACHE"):
        return os.path.abspath(os.path.expanduser(os.environ["ZOO_CACHE"]))
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras")
    return os.path.abspath(os.path.join(keras_home, "zoo"))


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
    except _transfer_errors(hub) as error:
        if os.path.isfile(stored):
            logger.warning("Hub %s is unreachable (%s); using the cached "
                           "index.", hub.location, error)
        return _stored_index(hub, stored, f"the hub is unreachable: {error}")
    index = check_index(_read_json_bytes(data, source), source)
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


# --- verification and download ----------------------------------------------

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


# --- loading ----------------------------------------------------------------

def _weight_shapes(model):
    return [tuple(weight.shape) for weight in model.weights]


def _load_keras_file(path, label, compile):
    import keras

    import zoo.layers  # noqa: F401  (registers the zoo's custom layers)

    try:
        with warnings.catch_warnings():
            # Published files carry compile settings but no optimizer
            # state, which Keras reports as skipped optimizer variables.
            warnings.filterwarnings(
                "ignore", message="Skipping variable loading for optimizer")
            return keras.saving.load_model(path, compile=compile,
                                           safe_mode=True)
    except ValueError as error:
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise HubError(
                f"Artifact {label} was rejected by Keras safe mode because "
                f"it contains code (such as a Lambda layer): {error}"
            ) from error
        raise


def load_pretrained(name, tag, hub=None, compile=True, **overrides):
    """Load registered model `name` with pretrained weights `tag`.

    The `.keras` file is fetched and verified, loaded with Keras' safe
    mode, and checked against the model the registry builds from the
    entry's hyperparameters. Overrides that keep every weight shape return
    the model with all pretrained weights. Overrides that change some
    shapes, such as `num_classes`, keep the matching weights and initialize
    the others (each is logged), so the model can be fine-tuned.

    Args:
        name: Registered model name.
        tag: Weights tag, such as `"digits"`.
        hub: Hub location or `Hub`. Defaults to `ZOO_HUB`, else the
            repository's hub.
        compile: Return the model compiled (as the artifact was, or by the
            model's training recipe when overrides change it). Defaults to
            `True`.
        **overrides: Hyperparameters replacing those of the entry.

    Returns:
        A `keras.Model`.

    Raises:
        HubError: the entry is missing, a file failed its check, the file
            contains code, or it does not match the registry's builder.

    Example:

    ```python
    model = load_pretrained("cnn", "digits", num_classes=3)
    ```
    """
    from zoo.registry import get_spec

    spec = get_spec(name)
    hub, entry = get_entry(name, tag, hub)
    label = f"{name}:{tag} from hub {hub.location}"
    recorded = spec.hyperparameters(entry.get("hyperparameters", {}))
    hyperparameters = spec.hyperparameters({**recorded, **overrides})
    path = fetch_file(hub, entry["files"]["keras"], f"{name}:{tag} keras")
    # Loaded before the registry model is built, so a seed set by the
    # caller reaches the loaded layers as it does in `publish`.
    loaded = _load_keras_file(path, label, compile)
    built = spec.build(**hyperparameters)

    if len(loaded.weights) != len(built.weights):
        raise HubError(
            f"Artifact {label} has {len(loaded.weights)} weights but the "
            f"registry builds '{name}' with {len(built.weights)} from "
            f"{hyperparameters}. Overrides may change head sizes, not the "
            "depth; otherwise republish the weights for the current builder."
        )
    same_shapes = _weight_shapes(loaded) == _weight_shapes(built)
    if hyperparameters == recorded:
        if not same_shapes:
            raise HubError(
                f"Artifact {label} does not match the model the registry "
                f"builds from its recorded hyperparameters. Republish it "
                f"with `zoo hub rebuild --only {name}:{tag}`."
            )
        return loaded

    skipped = []
    for target, source in zip(built.weights, loaded.weights):
        if tuple(target.shape) == tuple(source.shape):
            target.assign(source)
        else:
            skipped.append(target.path)
    if skipped:
        logger.info("Initialized %d weights whose shape differs from %s:%s: "
                    "%s", len(skipped), name, tag, ", ".join(skipped))
    if compile:
        _recipe(spec, entry).compile(built)
    return built


def _recipe(spec, entry):
    from training.recipes import resolve_recipe
    from training.trainer import DEFAULT_SETTINGS

    return resolve_recipe(spec, {**DEFAULT_SETTINGS,
                                 **entry.get("settings", {})})


def measure(model, spec, dataset, settings=None):
    """Measure the test metrics of `model` on `dataset`'s recorded split.

    The model is compiled by its training recipe and evaluated on the test
    split made with the default split seed, as `zoo train` does.

    Note: this seeds Python, NumPy and Keras' global random generators
    with 0 (`keras.utils.set_random_seed`), so metrics that sample, such
    as an RBM's contrastive divergence loss, repeat from call to call.

    Args:
        model: The Keras model.
        spec: Its `ModelSpec`.
        dataset: Data set name.
        settings: Training settings of the run. Defaults to the trainer's.

    Returns:
        A dict of metric name to float.
    """
    import keras

    from zoo import datasets

    keras.utils.set_random_seed(0)
    recipe = _recipe(spec, {"settings": settings or {}})
    recipe.compile(model)
    bundle = datasets.load(dataset)
    _, _, test = recipe.datasets(bundle)
    return {key: float(value)
            for key, value in recipe.evaluate(model, test, bundle).items()}


def measure_entry(name, tag, hub=None):
    """Load `name:tag` from `hub` and measure it on its recorded split.

    Returns:
        `(recorded_metrics, measured_metrics)`.
    """
    from zoo.registry import get_spec

    hub, entry = get_entry(name, tag, hub)
    if entry.get("split_seed", 0) != 0 or entry.get("split") != "test":
        raise HubError(
            f"{name}:{tag} records split {entry.get('split')!r} with seed "
            f"{entry.get('split_seed')!r}; only the test split of seed 0, "
            "which `zoo train` uses, can be measured."
        )
    import keras

    # Seeded before loading because sampling layers draw their seeds when
    # they are created; `publish` does the same.
    keras.utils.set_random_seed(0)
    model = load_pretrained(name, tag, hub=hub, compile=False)
    measured = measure(model, get_spec(name), entry["dataset"],
                       entry.get("settings"))
    return dict(entry["metrics"]), measured


# --- SavedModel archives ----------------------------------------------------

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


# --- publishing -------------------------------------------------------------

def _local_root(hub, purpose):
    hub = resolve_hub(hub if hub is not None else PACKAGE_HUB)
    if hub.is_remote:
        raise HubError(
            f"{purpose} writes to a local folder, but hub {hub.location} is "
            "remote. Write to a folder, then copy it to the server or bucket."
        )
    return hub.root


@contextlib.contextmanager
def _index_lock(root):
    # Lock the hub folder itself, so publishing leaves no lock file there.
    os.makedirs(root, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    descriptor = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _update_index(root, updates):
    """Merge `{name: {tag: entry}}` into `root/index.json` atomically."""
    with _index_lock(root):
        path = os.path.join(root, INDEX_NAME)
        if os.path.isfile(path):
            index = read_index(root)
        else:
            index = {"format": FORMAT_VERSION, "models": {}}
        for name, tags in updates.items():
            index["models"].setdefault(name, {}).update(tags)
        check_index(index, f"new index of {root}")
        write_json_atomic(path, index)


def train_command(config):
    """Return the `zoo train` command that reproduces a run's config."""
    from zoo.registry import get_spec

    spec = get_spec(config["model"])
    settings = config.get("settings", {})
    arguments = [config["model"], "--dataset", config["dataset"]]
    for option, key in (("--epochs", "epochs"),
                        ("--batch-size", "batch_size"),
                        ("--learning-rate", "learning_rate"),
                        ("--seed", "seed")):
        if settings.get(key) is not None:
            arguments += [option, str(settings[key])]
    for key, value in sorted(config.get("hyperparameters", {}).items()):
        # Compare as JSON, so a tuple default equals the list in config.
        if json.dumps(spec.defaults.get(key)) != json.dumps(value):
            arguments += ["--set", f"{key}={json.dumps(value)}"]
    if config.get("augment"):
        arguments += ["--augment", config["augment"]]
    if config.get("weights"):
        arguments += ["--weights", config["weights"]]
    return "zoo train " + shlex.join(arguments)


def _read_run(run_dir):
    paths = {name: os.path.join(run_dir, name)
             for name in ("config.json", "best.keras")}
    for path in paths.values():
        if not os.path.isfile(path):
            raise HubError(
                f"{path!r} not found: {run_dir!r} is not a finished run "
                "folder of `zoo train`."
            )
    with open(paths["config.json"]) as handle:
        return json.load(handle), paths["best.keras"]


def publish(run_dir, tag, hub=None, *, command=None,
            license=DEFAULT_LICENSE):
    """Publish a finished `zoo train` run as pretrained weights `tag`.

    Loads the run's `best.keras` in safe mode, checks it against the model
    the registry builds from the run's hyperparameters, measures it on the
    test split, writes the `.keras` file and a SavedModel archive to
    `hub/<model>/<tag>/` and adds the entry to `hub/index.json`.

    Args:
        run_dir: Run folder with `config.json` and `best.keras`.
        tag: Weights tag: lowercase letters, digits, `.`, `_` or `-`.
        hub: Local hub folder. Defaults to the repository's hub (not
            `ZOO_HUB`, which may be remote).
        command: Command recorded as the way to reproduce the weights.
            Defaults to the `zoo train` command rebuilt from the config.
        license: License of the weights. Defaults to `"Apache-2.0"`.

    Returns:
        The index entry written.

    Example:

    ```python
    entry = publish("runs/cnn/20261204-163000", "digits")
    ```
    """
    if not isinstance(tag, str) or not _TAG_PATTERN.match(tag):
        raise ValueError(
            "`tag` must be lowercase letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit. Received: tag={tag!r}"
        )
    if not isinstance(license, str) or not license.strip():
        raise ValueError(f"`license` must be a non-empty string such as "
                         f"'Apache-2.0'. Received: license={license!r}")
    root = _local_root(hub, "publish")
    config, keras_path = _read_run(run_dir)

    import keras
    import tensorflow as tf

    from zoo import export
    from zoo.registry import get_spec

    name = config["model"]
    spec = get_spec(name)
    hyperparameters = spec.hyperparameters(config.get("hyperparameters"))
    built = spec.build(**hyperparameters)
    model = _load_keras_file(keras_path, f"run {run_dir}", compile=False)
    if _weight_shapes(model) != _weight_shapes(built):
        raise HubError(
            f"{keras_path!r} does not match the model the registry builds "
            f"for '{name}' from the run's hyperparameters. Train it again "
            "with the current code."
        )
    settings = config.get("settings", {})
    recipe = _recipe(spec, {"settings": settings})
    # A fresh optimizer: the file keeps its compile settings, not the
    # optimizer state of training.
    recipe.compile(model)

    folder = os.path.join(root, name, tag)
    os.makedirs(folder, exist_ok=True)
    work = tempfile.mkdtemp(prefix=TEMPORARY_PREFIX, dir=folder)
    files = {}
    try:
        staged = {"keras": os.path.join(work, f"{name}-{tag}.keras"),
                  "saved_model": os.path.join(
                      work, f"{name}-{tag}-saved_model.tar.gz")}
        model.save(staged["keras"])
        # Measure the written file as users load it, not the object that
        # wrote it. Layers that sample draw their seeds when they are
        # created, so the seed is set before loading, as `measure_entry`
        # does.
        keras.utils.set_random_seed(0)
        published = _load_keras_file(staged["keras"], f"{name}:{tag}",
                                     compile=False)
        metrics = measure(published, spec, config["dataset"], settings)
        exported = export.export_saved_model(
            recipe.serving_model(model), spec,
            base_dir=os.path.join(work, "export"), version=1)
        _write_tar_gz(exported.path, staged["saved_model"])
        for kind, path in staged.items():
            final = os.path.join(folder, os.path.basename(path))
            files[kind] = {
                "path": f"{name}/{tag}/{os.path.basename(path)}",
                "sha256": sha256_file(path),
                "size": os.path.getsize(path),
            }
            os.replace(path, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    entry = {
        "files": files,
        "dataset": config["dataset"],
        "split": "test",
        "split_seed": 0,
        "metrics": metrics,
        "hyperparameters": hyperparameters,
        "settings": settings,
        "command": command or train_command(config),
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "license": license,
        "published": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
    }
    _update_index(root, {name: {tag: entry}})
    logger.info("Published %s:%s to %s: %s", name, tag, root, metrics)
    return entry


# --- prefetch ---------------------------------------------------------------

def _copy_verified(source, target, record):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    temporary = os.path.join(
        os.path.dirname(target),
        f"{TEMPORARY_PREFIX}{uuid.uuid4().hex}-{os.path.basename(target)}")
    try:
        shutil.copyfile(source, temporary)
        verify_file(temporary, record)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def parse_selection(text):
    """Split `"NAME"` or `"NAME:TAG"` into `(name, tag or None)`."""
    name, _, tag = str(text).partition(":")
    if not name:
        raise ValueError(f"Expected NAME or NAME:TAG, such as cnn:digits. "
                         f"Received: {text!r}")
    return name, tag or None


def prefetch(selections, destination, hub=None):
    """Copy chosen artifacts and their index entries into a new hub folder.

    The folder can be carried to a machine with no network and used there
    as `ZOO_HUB`. An existing index in `destination` is extended.

    Args:
        selections: `"NAME"` (every tag of the model) or `"NAME:TAG"`
            strings.
        destination: Local folder to write.
        hub: Hub to copy from. Defaults to `ZOO_HUB`, else the
            repository's hub.

    Returns:
        The list of `"NAME:TAG"` copied.
    """
    if not selections:
        raise ValueError("`selections` must name at least one model, such "
                         "as ['cnn:digits']. Received: []")
    hub = resolve_hub(hub)
    root = _local_root(destination, "prefetch")
    index = read_index(hub)
    updates, copied = {}, []
    for selection in selections:
        name, tag = parse_selection(selection)
        tags = [tag] if tag else sorted(index["models"].get(name, {}))
        if not tags:
            raise HubError(f"Hub {hub.location} has no weights for model "
                           f"{name!r}.")
        for chosen in tags:
            entry = index["models"].get(name, {}).get(chosen)
            if entry is None:
                raise HubError(f"Weights {name}:{chosen} not found in hub "
                               f"{hub.location}. Run `zoo hub list --hub "
                               f"{hub.location}` to see its entries.")
            for kind, record in entry["files"].items():
                source = fetch_file(hub, record, f"{name}:{chosen} {kind}")
                target = os.path.join(root, *record["path"].split("/"))
                _copy_verified(source, target, record)
            updates.setdefault(name, {})[chosen] = entry
            copied.append(f"{name}:{chosen}")
    _update_index(root, updates)
    return copied


# --- cache ------------------------------------------------------------------

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


# --- reproducible artifacts -------------------------------------------------

def read_recipes(path=RECIPES_PATH):
    """Read and check the table of reproducible pretrained artifacts.

    Returns:
        A list of rows `{"model", "tag", "train_args"}`.
    """
    with open(path, "rb") as handle:
        rows = _read_json_bytes(handle.read(), path)
    if not isinstance(rows, list):
        raise HubError(f"{path} must contain a list of rows. "
                       f"Received: {type(rows).__name__}")
    seen = set()
    for number, row in enumerate(rows):
        where = f"{path} row {number}"
        if not isinstance(row, dict) or set(row) != {"model", "tag",
                                                     "train_args"}:
            raise HubError(f"{where} must have exactly the keys model, tag "
                           f"and train_args. Received: {row!r}")
        arguments = row["train_args"]
        if not isinstance(arguments, list) or not all(
                isinstance(a, str) for a in arguments) or \
                arguments[:1] != [row["model"]]:
            raise HubError(f"{where}: train_args must be a list of strings "
                           "starting with the model name. Received: "
                           f"{arguments!r}")
        reserved = sorted(set(arguments) & set(_RESERVED_TRAIN_OPTIONS))
        if reserved:
            raise HubError(f"{where}: train_args must not contain "
                           f"{reserved}; the rebuild sets them. Received: "
                           f"{arguments!r}")
        if not _TAG_PATTERN.match(str(row["tag"])):
            raise HubError(f"{where}: invalid tag. Received: {row['tag']!r}")
        key = (row["model"], row["tag"])
        if key in seen:
            raise HubError(f"{where} repeats {key[0]}:{key[1]}.")
        seen.add(key)
    return rows


def rebuild(hub=None, only=None, runs_root=None, recipes=RECIPES_PATH):
    """Train every row of the recipe table from scratch and publish it.

    Each row runs as `python -m zoo train ARGS --run-dir DIR --no-export`
    in a fresh process, and the run is published with the command
    `zoo train ARGS` recorded.

    Args:
        hub: Local hub folder. Defaults to the repository's hub.
        only: `"NAME"` or `"NAME:TAG"` strings selecting rows. Defaults to
            every row.
        runs_root: Folder for the run folders. Defaults to a temporary
            folder removed at the end.
        recipes: The recipe table file. Defaults to
            `zoo/pretrained/recipes.json`.

    Returns:
        The list of published `(name, tag, entry)`.
    """
    root = _local_root(hub, "rebuild")
    rows = read_recipes(recipes)
    if only:
        selected = [parse_selection(text) for text in only]
        rows = [row for row in rows if any(
            row["model"] == name and tag in (None, row["tag"])
            for name, tag in selected)]
        if not rows:
            raise ValueError(f"No row of {recipes} matches "
                             f"`only`. Received: only={only!r}")
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    published = []
    with contextlib.ExitStack() as stack:
        if runs_root is None:
            runs_root = stack.enter_context(tempfile.TemporaryDirectory())
        for row in rows:
            run_dir = os.path.join(runs_root, f"{row['model']}-{row['tag']}")
            shutil.rmtree(run_dir, ignore_errors=True)
            logger.info("Training %s:%s: zoo train %s", row["model"],
                        row["tag"], shlex.join(row["train_args"]))
            subprocess.run(
                [sys.executable, "-m", "zoo", "train", *row["train_args"],
                 "--run-dir", run_dir, "--no-export"],
                cwd=repository, check=True)
            command = "zoo train " + shlex.join(row["train_args"])
            entry = publish(run_dir, row["tag"], hub=root, command=command)
            published.append((row["model"], row["tag"], entry))
    return published
