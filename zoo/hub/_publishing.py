"""Publishing runs into a hub, prefetching, and rebuilding the hub."""

import contextlib
import datetime
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no fcntl
    fcntl = None

from zoo.hub._archive import _write_tar_gz
from zoo.hub._download import fetch_file
from zoo.hub._download import sha256_file
from zoo.hub._download import verify_file
from zoo.hub._index import DEFAULT_LICENSE
from zoo.hub._index import FORMAT_VERSION
from zoo.hub._index import INDEX_NAME
from zoo.hub._index import PACKAGE_HUB
from zoo.hub._index import RECIPES_PATH
from zoo.hub._index import TEMPORARY_PREFIX
from zoo.hub._index import HubError
from zoo.hub._index import _read_json_bytes
from zoo.hub._index import check_index
from zoo.hub._index import read_index
from zoo.hub._index import resolve_hub
from zoo.hub._index import write_json_atomic
from zoo.hub._loading import _load_keras_file
from zoo.hub._loading import _recipe
from zoo.hub._loading import _weight_shapes
from zoo.hub._loading import measure

logger = logging.getLogger(__name__)

_TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._\-]*$")
# Options of `zoo train` that `rebuild` sets itself.
_RESERVED_TRAIN_OPTIONS = ("--run-dir", "--no-export", "--base")


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
             for name in ("config.json", "best.keras", "metrics.json")}
    for path in paths.values():
        if not os.path.isfile(path):
            raise HubError(
                f"{path!r} not found: {run_dir!r} is not a finished run "
                "folder of `zoo train` (a run writes metrics.json when it "
                "ends). Finish it by running the same `zoo train` command "
                "again, which resumes it."
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
        run_dir: Finished run folder with `config.json`, `best.keras` and
            `metrics.json`.
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
            raise HubError(f"{where}: tag must be lowercase letters, "
                           "digits, '.', '_' or '-'. Received: "
                           f"{row['tag']!r}")
        key = (row["model"], row["tag"])
        if key in seen:
            raise HubError(f"{where} repeats {key[0]}:{key[1]}; each "
                           "model and tag may appear once. Remove one row.")
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
    repository = os.path.dirname(os.path.dirname(PACKAGE_HUB))
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
