"""Tests of the pretrained hub against a real HTTP server on 127.0.0.1.

The repository's own hub (zoo/pretrained) is served over HTTP, downloaded
into a temporary cache, verified and loaded, and each index entry is
measured again on its recorded split.
"""

import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest

import zoo
from tests.conftest import REPO_ROOT
from tests.hub_server import HubServer
from zoo import hub
from zoo.hub import _download as hub_download

METRIC_TOLERANCE = 0.005
CNN_KERAS = "cnn/digits/cnn-digits.keras"


def _repository_entries():
    index = hub.read_index(hub.PACKAGE_HUB)
    return [(name, tag) for name, tags in sorted(index["models"].items())
            for tag in sorted(tags)]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache, no ZOO_HUB or ZOO_OFFLINE, and fast retries."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("ZOO_CACHE", str(folder))
    monkeypatch.delenv("ZOO_HUB", raising=False)
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    monkeypatch.setattr(hub_download, "RETRY_DELAY_SECONDS", 0.0)
    monkeypatch.setattr(hub_download, "DOWNLOAD_ATTEMPTS", 2)
    return folder


@pytest.fixture
def server():
    with HubServer(hub.PACKAGE_HUB) as running:
        yield running


def _files_under(folder):
    return sorted(
        os.path.relpath(os.path.join(current, name), folder)
        for current, _, names in os.walk(folder) for name in names)


def _artifact_files(folder):
    # Everything but the stored index, hub record and lock files.
    return [path for path in _files_under(folder)
            if not path.endswith((hub.INDEX_NAME, hub.HUB_RECORD_NAME,
                                  hub.LOCK_SUFFIX))]


def _write_hub(root, name, tag, files):
    """Write a local hub with one entry whose files are `{kind: bytes}`."""
    records = {}
    for kind, data in files.items():
        suffix = ".keras" if kind == "keras" else ".tar.gz"
        relative = f"{name}/{tag}/{name}-{tag}{suffix}"
        path = os.path.join(root, *relative.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
        records[kind] = {"path": relative, "size": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()}
    index = {"format": 1, "models": {name: {tag: {
        "files": records, "dataset": "digits-flat", "split": "test",
        "split_seed": 0, "metrics": {}, "hyperparameters": {},
        "settings": {}, "command": "none", "license": "Apache-2.0"}}}}
    with open(os.path.join(root, hub.INDEX_NAME), "w") as handle:
        json.dump(index, handle)
    return index


# --- download, verify, cache, load -------------------------------------------

def test_repository_entries_complete():
    entries = _repository_entries()
    assert ("cnn", "digits") in entries
    assert ("mlp", "digits") in entries
    for name, tag in entries:
        _, entry = hub.get_entry(name, tag, hub.PACKAGE_HUB)
        assert set(entry["files"]) == {"keras", "saved_model"}
        assert entry["license"]
        assert entry["command"].startswith(f"zoo train {name} ")
        assert entry["keras_version"]
        assert entry["tensorflow_version"]
        assert entry["split"] == "test"
        assert tag in zoo.get_spec(name).pretrained, (
            f"{name}:{tag} is published but its registry record lacks "
            f"pretrained=({tag!r},)")


@pytest.mark.slow
@pytest.mark.parametrize("name,tag", _repository_entries())
def test_entry_metrics_remeasured_over_http(name, tag, cache, server):
    recorded, measured = hub.measure_entry(name, tag, hub=server.url)

    assert recorded, f"{name}:{tag} records no metrics"
    for key, value in recorded.items():
        assert abs(measured[key] - value) <= METRIC_TOLERANCE, (
            f"{name}:{tag} {key}: recorded {value}, measured {measured[key]}")
    if name == "cnn":
        assert measured["test_accuracy"] >= 0.97
    keras_path = f"{name}/{tag}/{name}-{tag}.keras"
    assert server.requests[keras_path] == 1
    assert any(path.endswith(f"{name}-{tag}.keras")
               for path in _artifact_files(cache))


def test_loaded_model_matches_registry_build(cache, server):
    model = zoo.get_model("cnn", weights="digits", hub=server.url)
    built = zoo.get_spec("cnn").build()

    assert [w.shape for w in model.weights] == \
        [w.shape for w in built.weights]
    assert model.optimizer is not None
    assert model.compiled


def test_truncated_download_leaves_nothing(cache, server):
    server.faults[CNN_KERAS] = "truncate"

    with pytest.raises(hub.HubError, match="failed 2 times"):
        hub.download("cnn", "digits", hub=server.url, kinds=("keras",))
    assert server.requests[CNN_KERAS] == 2
    assert _artifact_files(cache) == []

    del server.faults[CNN_KERAS]
    paths = hub.download("cnn", "digits", hub=server.url, kinds=("keras",))
    _, entry = hub.get_entry("cnn", "digits", server.url)
    assert hub.sha256_file(paths["keras"]) == \
        entry["files"]["keras"]["sha256"]
    assert len(_artifact_files(cache)) == 1


def test_wrong_bytes_detected_and_not_loaded(cache, server):
    server.faults[CNN_KERAS] = "corrupt"

    with pytest.raises(hub.ChecksumError, match="sha256"):
        zoo.get_model("cnn", weights="digits", hub=server.url)
    assert server.requests[CNN_KERAS] == 1
    assert _artifact_files(cache) == []


def test_longer_response_rejected(cache, server):
    server.faults[CNN_KERAS] = "longer"

    with pytest.raises(hub.ChecksumError, match="longer than"):
        hub.download("cnn", "digits", hub=server.url, kinds=("keras",))
    assert _artifact_files(cache) == []


def test_flipped_cached_byte_found_and_replaced(cache, server, zoo_command):
    path = hub.download("cnn", "digits", hub=server.url,
                        kinds=("keras",))["keras"]
    with open(path, "r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0x01]))

    rows = hub.verify_cache()
    assert [row["ok"] for row in rows] == [False]
    checked = zoo_command("cache", "verify", env={"ZOO_CACHE": str(cache)})
    assert checked.returncode == 1
    assert "FAILED" in checked.stdout
    assert "cnn:digits keras" in checked.stdout

    model = zoo.get_model("cnn", weights="digits", hub=server.url)
    assert model is not None
    assert server.requests[CNN_KERAS] == 2
    assert [row["ok"] for row in hub.verify_cache()] == [True]


def test_concurrent_downloads_both_succeed(cache, server):
    server.faults[CNN_KERAS] = ("slow", 0.01)
    code = (
        "from zoo import hub; "
        f"print(hub.download('cnn', 'digits', hub={server.url!r}, "
        "kinds=('keras',))['keras'])"
    )
    environment = {**os.environ, "ZOO_CACHE": str(cache)}
    processes = [subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=environment,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in processes]

    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
    paths = {stdout.strip() for stdout, _ in outputs}
    assert len(paths) == 1
    _, entry = hub.get_entry("cnn", "digits", server.url)
    assert hub.sha256_file(paths.pop()) == entry["files"]["keras"]["sha256"]
    assert len(_artifact_files(cache)) == 1
    assert server.requests[CNN_KERAS] == 1


def test_missing_hub_index_reports_http_status(cache, tmp_path):
    with HubServer(str(tmp_path)) as running:
        with pytest.raises(hub.HubError, match="HTTP 404"):
            hub.download("cnn", "digits", hub=running.url)


# --- offline -----------------------------------------------------------------

def test_offline_empty_cache_names_artifact_and_hub(cache, server,
                                                    monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")

    with pytest.raises(hub.OfflineError) as raised:
        zoo.get_model("cnn", weights="digits", hub=server.url)
    assert "cnn:digits" in str(raised.value)
    assert server.url in str(raised.value)
    assert sum(server.requests.values()) == 0


def test_offline_missing_artifact_names_it(cache, server, monkeypatch):
    hub.read_index(server.url)
    monkeypatch.setenv("ZOO_OFFLINE", "1")

    with pytest.raises(hub.OfflineError) as raised:
        hub.download("cnn", "digits", hub=server.url, kinds=("keras",))
    assert CNN_KERAS in str(raised.value)
    assert server.url in str(raised.value)


def test_offline_warm_cache_loads_without_network(cache, tmp_path,
                                                  monkeypatch):
    with HubServer(hub.PACKAGE_HUB) as running:
        url = running.url
        hub.download("mlp", "digits", hub=url, kinds=("keras",))
    monkeypatch.setenv("ZOO_OFFLINE", "1")

    model = zoo.get_model("mlp", weights="digits", hub=url)
    assert model.output_shape == (None, 10)


def test_failing_hub_falls_back_to_cached_index(cache, tmp_path):
    with HubServer(hub.PACKAGE_HUB) as running:
        hub.download("mlp", "digits", hub=running.url, kinds=("keras",))
        running.faults[hub.INDEX_NAME] = "error"
        model = zoo.get_model("mlp", weights="digits", hub=running.url)

    assert model.output_shape == (None, 10)


def test_failing_hub_without_cache_raises(cache, tmp_path):
    with HubServer(hub.PACKAGE_HUB) as running:
        running.faults[hub.INDEX_NAME] = "error"
        with pytest.raises(hub.HubError, match="500"):
            hub.download("mlp", "digits", hub=running.url)


# --- security ----------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "../escape.keras", "/etc/passwd.keras", "cnn/../../escape.keras",
    "cnn\\..\\escape.keras", ".hidden.keras", "cnn//x.keras", "C:/x.keras",
])
def test_index_path_escape_rejected(path, cache, tmp_path):
    root = tmp_path / "hub"
    index = _write_hub(str(root), "mlp", "digits", {"keras": b"x"})
    index["models"]["mlp"]["digits"]["files"]["keras"]["path"] = path
    (root / hub.INDEX_NAME).write_text(json.dumps(index))

    with HubServer(str(root)) as running:
        with pytest.raises(hub.HubError, match="invalid"):
            hub.download("mlp", "digits", hub=running.url)
        assert sum(running.requests.values()) == 1
    assert _artifact_files(cache) == []


def test_index_model_name_escape_rejected(tmp_path):
    index = _write_hub(str(tmp_path), "mlp", "digits", {"keras": b"x"})
    index["models"]["../mlp"] = index["models"].pop("mlp")

    with pytest.raises(hub.HubError, match="invalid"):
        hub.check_index(index)


def _tar_gz(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _member(name, data=b"x", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


@pytest.mark.parametrize("member", [
    _member("../escape.txt"),
    _member("/tmp/zoo-hub-escape.txt"),
    _member("variables/../../escape.txt"),
    _member("link", kind=tarfile.SYMTYPE, link="/etc/passwd"),
    _member("hard", kind=tarfile.LNKTYPE, link="../outside"),
    _member("fifo", kind=tarfile.FIFOTYPE),
], ids=["parent", "absolute", "nested-parent", "symlink", "hardlink", "fifo"])
def test_archive_escape_rejected(member, tmp_path):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar_gz([_member("saved_model.pb"), member]))
    target = tmp_path / "out" / "1"

    with pytest.raises(hub.HubError, match="not extracted"):
        hub.safe_extract(str(archive), str(target))
    assert not target.exists()
    assert not (tmp_path / "escape.txt").exists()
    assert _files_under(str(tmp_path / "out")) == []


def test_bad_archive_in_hub_rejected(cache, tmp_path):
    root = tmp_path / "hub"
    archive = _tar_gz([_member("saved_model.pb"), _member("../escape.txt")])
    _write_hub(str(root), "mlp", "digits",
               {"keras": b"x", "saved_model": archive})

    with pytest.raises(hub.HubError, match="'../escape.txt'"):
        hub.extract_saved_model("mlp", "digits", str(tmp_path / "serve"),
                                hub=str(root))
    assert not (tmp_path / "serve" / "escape.txt").exists()
    assert not (tmp_path / "serve" / "mlp" / "1").exists()


def test_lambda_layer_artifact_rejected(cache, tmp_path):
    import keras

    inputs = keras.Input((64,))
    hidden = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(hidden)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    root = tmp_path / "hub"
    _write_hub(str(root), "mlp", "evil", {"keras": path.read_bytes()})

    with pytest.raises(hub.HubError, match="safe mode"):
        zoo.get_model("mlp", weights="evil", hub=str(root))


# --- publish, prefetch, serving and fine-tuning ------------------------------

@pytest.mark.slow
def test_rebuild_trains_and_publishes(cache, tmp_path):
    import keras

    recipes = tmp_path / "recipes.json"
    arguments = ["mlp", "--epochs", "1", "--set", "hidden_units=[8]"]
    recipes.write_text(json.dumps([
        {"model": "mlp", "tag": "smoke", "train_args": arguments}]))
    root = tmp_path / "hub"
    runs = tmp_path / "runs"

    [(name, tag, entry)] = hub.rebuild(hub=str(root), runs_root=str(runs),
                                       recipes=str(recipes))
    hub.publish(str(runs / "mlp-smoke"), "smoke-2", hub=str(root),
                license="CC0-1.0")

    assert (name, tag) == ("mlp", "smoke")
    index = hub.read_index(str(root))
    assert sorted(index["models"]["mlp"]) == ["smoke", "smoke-2"]
    assert index["models"]["mlp"]["smoke-2"]["license"] == "CC0-1.0"
    assert "--set 'hidden_units=[8]'" in \
        index["models"]["mlp"]["smoke-2"]["command"]
    assert entry["license"] == "Apache-2.0"
    assert entry["command"] == "zoo train " + shlex.join(arguments)
    assert entry["keras_version"] == keras.__version__
    assert set(entry["metrics"]) >= {"test_accuracy", "test_loss"}
    for record in entry["files"].values():
        path = root / record["path"]
        assert hub.sha256_file(str(path)) == record["sha256"]
        assert path.stat().st_size == record["size"]
    assert [p for p in _files_under(str(root)) if ".tmp" in p] == []

    model = zoo.get_model("mlp", weights="smoke", hub=str(root),
                          compile=False)
    trained = keras.saving.load_model(str(runs / "mlp-smoke" / "best.keras"))
    features = np.random.default_rng(0).random((16, 64), "float32")
    np.testing.assert_allclose(model.predict(features, verbose=0),
                               trained.predict(features, verbose=0),
                               atol=1e-6)


def _train_options(arguments):
    """Parse `zoo train` arguments into options, `--set` as a dict."""
    from zoo import cli

    options = vars(cli.build_parser().parse_args(["train", *arguments]))
    options["set"] = cli._overrides(options["set"])
    return options


def test_recipe_table_matches_index():
    rows = hub.read_recipes()
    index = hub.read_index(hub.PACKAGE_HUB)

    assert {(row["model"], row["tag"]) for row in rows} == \
        set(_repository_entries())
    for row in rows:
        command = index["models"][row["model"]][row["tag"]]["command"]
        words = shlex.split(command)
        assert words[:2] == ["zoo", "train"]
        assert _train_options(words[2:]) == \
            _train_options(row["train_args"]), (
                f"{row['model']}:{row['tag']}: the index command differs "
                "from the recipe row")


@pytest.mark.parametrize("row", [
    {"model": "mlp", "tag": "x", "train_args": ["mlp", "--run-dir", "r"]},
    {"model": "mlp", "tag": "x", "train_args": ["cnn"]},
    {"model": "mlp", "tag": "Bad Tag", "train_args": ["mlp"]},
    {"model": "mlp", "train_args": ["mlp"]},
], ids=["reserved-option", "other-model", "bad-tag", "missing-tag"])
def test_recipe_table_rejects_bad_row(row, tmp_path):
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps([row]))

    with pytest.raises(hub.HubError, match="row 0"):
        hub.read_recipes(str(path))


def test_publish_rejects_bad_tag(tmp_path):
    with pytest.raises(ValueError, match="Received: tag='Bad Tag'"):
        hub.publish(str(tmp_path), "Bad Tag", hub=str(tmp_path))


@pytest.mark.slow
def test_saved_model_archive_serves(cache, tmp_path, zoo_command):
    import tensorflow as tf

    result = zoo_command("download", "cnn", "--weights", "digits",
                         "--hub", hub.PACKAGE_HUB, "--serving-base",
                         str(tmp_path))
    assert result.returncode == 0, result.stderr
    folder = str(tmp_path / "cnn" / "1")
    assert f"saved_model: {folder}" in result.stdout
    config = (tmp_path / "models.config").read_text()
    assert "name: 'cnn'" in config or 'name: "cnn"' in config
    second = hub.extract_saved_model("cnn", "digits", str(tmp_path),
                                     hub=hub.PACKAGE_HUB)
    assert second == str(tmp_path / "cnn" / "2")
    serving = tf.saved_model.load(folder).signatures["serving_default"]
    model = zoo.get_model("cnn", weights="digits", compile=False)
    images = np.random.default_rng(0).random((4, 8, 8, 1), "float32")

    served = serving(images=tf.constant(images))["probabilities"].numpy()
    np.testing.assert_allclose(served, model.predict(images, verbose=0),
                               atol=1e-5)


def test_prefetch_folder_works_offline(cache, server, tmp_path, monkeypatch,
                                       zoo_command):
    carried = tmp_path / "carried"
    result = zoo_command("prefetch", "mlp:digits", "--to", str(carried),
                         "--hub", server.url,
                         env={"ZOO_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr
    shutil.rmtree(cache)
    monkeypatch.setenv("ZOO_HUB", str(carried))
    monkeypatch.setenv("ZOO_OFFLINE", "1")

    model = zoo.get_model("mlp", weights="digits")
    assert model.output_shape == (None, 10)
    assert sorted(hub.read_index()["models"]) == ["mlp"]
    assert not cache.exists()


def test_file_url_hub_read_in_place(cache):
    paths = hub.download("mlp", "digits", hub=f"file://{hub.PACKAGE_HUB}")

    assert os.path.dirname(paths["keras"]) == os.path.join(
        hub.PACKAGE_HUB, "mlp", "digits")
    assert not cache.exists()


def test_gfile_hub_downloads(cache):
    import tensorflow as tf

    root = "ram://zoo-hub-test"
    for name in ("index.json", "mlp/digits/mlp-digits.keras"):
        tf.io.gfile.makedirs(os.path.dirname(f"{root}/{name}"))
        tf.io.gfile.copy(os.path.join(hub.PACKAGE_HUB, name),
                         f"{root}/{name}", overwrite=True)

    model = zoo.get_model("mlp", weights="digits", hub=root)
    assert model.output_shape == (None, 10)
    assert len(_artifact_files(cache)) == 1


def test_cache_list_and_prune(cache, server, zoo_command):
    hub.download("mlp", "digits", hub=server.url)
    leftover = os.path.join(hub.Hub(server.url).cache_root, "mlp",
                            ".tmp-abandoned")
    with open(leftover, "wb") as handle:
        handle.write(b"partial")

    listed = zoo_command("cache", "list", env={"ZOO_CACHE": str(cache)})
    assert listed.returncode == 0, listed.stderr
    assert "mlp:digits keras" in listed.stdout
    assert "mlp:digits saved_model" in listed.stdout
    pruned = zoo_command("cache", "prune", env={"ZOO_CACHE": str(cache)})
    assert pruned.returncode == 0, pruned.stderr
    assert not os.path.exists(leftover)
    assert len(_artifact_files(cache)) == 2
    unrelated = cache / "notes.txt"
    unrelated.write_text("not part of any hub")
    everything = zoo_command("cache", "prune", "--all",
                             env={"ZOO_CACHE": str(cache)})
    assert everything.returncode == 0, everything.stderr
    assert _files_under(str(cache)) == ["notes.txt"]


def test_hub_list_and_publish_errors(zoo_command, tmp_path):
    listed = zoo_command("hub", "list", "--hub", hub.PACKAGE_HUB)
    assert listed.returncode == 0, listed.stderr
    assert "cnn:digits  digits/test  test_accuracy=" in listed.stdout
    assert "zoo train cnn --dataset digits" in listed.stdout

    missing = zoo_command("publish", str(tmp_path / "none"), "--tag", "x",
                          "--hub", str(tmp_path / "hub"))
    assert missing.returncode == 2
    assert "not a finished run folder" in missing.stderr
    assert not (tmp_path / "hub").exists()


def test_head_override_keeps_backbone(cache):
    pretrained = zoo.get_model("cnn", weights="digits", compile=False)
    model = zoo.get_model("cnn", weights="digits", num_classes=3)

    assert model.output_shape == (None, 3)
    np.testing.assert_array_equal(model.weights[0].numpy(),
                                  pretrained.weights[0].numpy())
    assert model.compiled


def test_unknown_tag_lists_available(cache):
    with pytest.raises(hub.HubError, match="Available: cnn:digits"):
        zoo.get_model("cnn", weights="imagenet")


@pytest.mark.slow
def test_fine_tune_starts_from_weights(cache, tmp_path):
    from training import trainer

    result = trainer.train("mlp", weights="digits", epochs=1,
                           steps_per_epoch=1, learning_rate=1e-5,
                           run_dir=str(tmp_path / "run"))
    assert result.metrics["test_accuracy"] >= 0.9


# --- fresh clone -------------------------------------------------------------

@pytest.mark.slow
def test_fresh_clone_loads_cnn_offline(tmp_path):
    if not os.path.isdir(os.path.join(REPO_ROOT, ".git")):
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1",
                    f"file://{REPO_ROOT}", str(clone)], check=True,
                   timeout=120)
    empty_cache = tmp_path / "cache"
    environment = {
        key: value for key, value in os.environ.items()
        if not key.startswith("ZOO_") and key != "PYTHONPATH"}
    # Any attempt to use the network goes to a closed port and fails.
    dead = "http://127.0.0.1:9"
    environment.update(ZOO_CACHE=str(empty_cache), http_proxy=dead,
                       https_proxy=dead, HTTP_PROXY=dead, HTTPS_PROXY=dead,
                       TF_CPP_MIN_LOG_LEVEL="2")
    # An editable install of the working tree would supply modules the
    # clone lacks, so its import finders are removed first.
    code = (
        "import sys\n"
        "sys.meta_path = [f for f in sys.meta_path\n"
        "                 if 'editable' not in repr(f)]\n"
        "import numpy as np, zoo\n"
        "from zoo import hub\n"
        "model = zoo.get_model('cnn', weights='digits')\n"
        "print(hub.__file__)\n"
        "print(model.predict(np.zeros((2, 8, 8, 1)), verbose=0).shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=clone,
                            env=environment, capture_output=True, text=True,
                            timeout=300)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(str(clone))
    assert "(2, 10)" in result.stdout
    assert not empty_cache.exists()


def test_cache_path_that_is_a_file_rejected(tmp_path, monkeypatch):
    path = tmp_path / "cache-file"
    path.write_text("not a folder")
    monkeypatch.setenv("ZOO_CACHE", str(path))
    with pytest.raises(hub.HubError, match="not a folder"):
        hub.cache_dir()
