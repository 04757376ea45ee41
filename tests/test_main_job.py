"""The main job end to end: `zoo train cnn`, its export, and serving it.

These tests run the real command line in fresh processes from an empty
working folder, as a new user would after cloning.
"""

import json
import os

import numpy as np
import pytest

from tests.conftest import run_python, run_zoo
from zoo import datasets

pytestmark = pytest.mark.slow


def _tree_digest(path):
    import hashlib

    digest = hashlib.sha256()
    for root, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(full[len(path):].encode())
            with open(full, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Run `zoo train cnn` twice in an empty folder."""
    folder = tmp_path_factory.mktemp("job")
    first = run_zoo("train", "cnn", cwd=str(folder))
    assert first.returncode == 0, first.stderr[-3000:]
    digest = _tree_digest(str(folder / "saved_models" / "cnn" / "1"))
    second = run_zoo("train", "cnn", "--epochs", "2", cwd=str(folder))
    assert second.returncode == 0, second.stderr[-3000:]
    return {"folder": folder, "first": first, "second": second,
            "digest_before": digest}


def test_train_reports_accuracy(workdir):
    output = workdir["first"].stdout
    line = next(text for text in output.splitlines()
                if text.startswith("test_accuracy:"))
    accuracy = float(line.split(":")[1])
    assert accuracy >= 0.97
    assert "saved_models/cnn/1" in output
    assert "docker run" in output


def test_run_folder_contents(workdir):
    runs = workdir["folder"] / "runs" / "cnn"
    run_dirs = sorted(p for p in runs.iterdir() if p.is_dir())
    assert len(run_dirs) == 2
    for name in ("config.json", "history.csv", "curves.png", "best.keras",
                 "metrics.json"):
        assert (run_dirs[0] / name).is_file(), name
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.97


def test_second_run_exports_version_two(workdir):
    base = workdir["folder"] / "saved_models" / "cnn"
    assert sorted(os.listdir(base)) == ["1", "2"]
    assert "saved_models/cnn/2" in workdir["second"].stdout
    after = _tree_digest(str(base / "1"))
    assert after == workdir["digest_before"]


def test_tf1_session_parity(workdir):
    folder = workdir["folder"]
    run_dir = sorted((folder / "runs" / "cnn").iterdir())[0]
    code = f"""
import json, numpy as np, tensorflow as tf, keras
from zoo import datasets
x = datasets.load("digits").test.x[:64]
model = keras.saving.load_model({str(run_dir / "best.keras")!r})
expected = model.predict(x, verbose=0)
graph = tf.Graph()
with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
    meta = tf.compat.v1.saved_model.loader.load(
        session, ["serve"], {str(folder / "saved_models" / "cnn" / "1")!r})
    signature = meta.signature_def["serving_default"]
    feed = signature.inputs["images"].name
    fetch = signature.outputs["probabilities"].name
    served = session.run(fetch, feed_dict={{feed: x}})
print("MAXDIFF", float(np.abs(served - expected).max()))
print("INPUTS", sorted(signature.inputs), "OUTPUTS", sorted(signature.outputs))
"""
    run = run_python(code)
    assert run.returncode == 0, run.stderr[-3000:]
    difference = float(run.stdout.split("MAXDIFF")[1].split()[0])
    assert difference <= 1e-5
    assert "INPUTS ['images'] OUTPUTS ['probabilities']" in run.stdout


def test_predict_matches_labels(workdir, tmp_path):
    test = datasets.load("digits").test
    body = {"instances": test.x[:20].tolist()}
    request = tmp_path / "request.json"
    request.write_text(json.dumps(body))
    run = run_zoo("predict", "saved_models/cnn/1", "--input", str(request),
                  cwd=str(workdir["folder"]))
    assert run.returncode == 0, run.stderr[-2000:]
    response = json.loads(run.stdout)
    predicted = np.argmax(np.array(response["predictions"]), axis=1)
    assert len(predicted) == 20
    assert (predicted == test.y[:20]).mean() >= 0.95


def test_predict_base_path_and_npy(workdir, tmp_path):
    test = datasets.load("digits").test
    request = tmp_path / "request.npy"
    np.save(request, test.x[:5])
    run = run_zoo("predict", "saved_models/cnn", "--input", str(request),
                  cwd=str(workdir["folder"]))
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(json.loads(run.stdout)["predictions"]) == 5


@pytest.mark.parametrize("body, message", [
    ({"instances": [[[0.0] * 8] * 8]}, "has shape (1, 8, 8)"),
    ({"instances": [[["a"] * 1] * 8] * 8}, "must be numeric"),
    ({"rows": []}, 'exactly one of "instances"'),
    ({"instances": []}, "non-empty list"),
])
def test_predict_rejects_bad_requests(workdir, tmp_path, body, message):
    request = tmp_path / "request.json"
    request.write_text(json.dumps(body))
    run = run_zoo("predict", "saved_models/cnn/1", "--input", str(request),
                  cwd=str(workdir["folder"]))
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def test_predict_rejects_wrong_dtype_npy(workdir, tmp_path):
    request = tmp_path / "request.npy"
    np.save(request, np.array(["x"] * 64).reshape(1, 8, 8, 1))
    run = run_zoo("predict", "saved_models/cnn/1", "--input", str(request),
                  cwd=str(workdir["folder"]))
    assert run.returncode == 2
    assert "must be numeric" in run.stderr


def test_unknown_dataset_on_train(tmp_path):
    run = run_zoo("train", "cnn", "--dataset", "digitz", cwd=str(tmp_path))
    assert run.returncode == 2
    assert "Unknown data set 'digitz'" in run.stderr
    assert "Did you mean: digits" in run.stderr


def test_non_integer_folder_rejected(workdir, tmp_path):
    base = tmp_path / "saved_models" / "cnn"
    (base / "latest").mkdir(parents=True)
    run = run_zoo("export", str(sorted(
        (workdir["folder"] / "runs" / "cnn").iterdir())[0]),
        "--base", str(tmp_path / "saved_models"), cwd=str(tmp_path))
    assert run.returncode == 2
    assert "latest" in run.stderr
    assert "positive integer" in run.stderr
    assert not (base / "1").exists()


def test_predict_classify_examples_body(workdir, tmp_path):
    test = datasets.load("digits").test
    body = {"signature_name": "classify", "examples": [
        {"images": image.reshape(-1).tolist()} for image in test.x[:10]]}
    request = tmp_path / "classify.json"
    request.write_text(json.dumps(body))
    run = run_zoo("predict", "saved_models/cnn/1", "--input", str(request),
                  cwd=str(workdir["folder"]))
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(run.stdout)["results"]
    assert len(results) == 10
    best = [max(pairs, key=lambda pair: pair[1])[0] for pairs in results]
    assert (np.array(best).astype(int) == test.y[:10]).mean() >= 0.9


def test_predict_png_b64_body(workdir, tmp_path):
    import base64

    from zoo.export import encode_png

    test = datasets.load("digits").test
    images = encode_png(test.x[:5])
    body = {"signature_name": "serving_png", "instances": [
        {"image_bytes": {"b64": base64.b64encode(png).decode()}}
        for png in images]}
    request = tmp_path / "png.json"
    request.write_text(json.dumps(body))
    run = run_zoo("predict", "saved_models/cnn/1", "--input", str(request),
                  cwd=str(workdir["folder"]))
    assert run.returncode == 0, run.stderr[-2000:]
    probabilities = np.array(json.loads(run.stdout)["predictions"])
    assert (probabilities.argmax(axis=1) == test.y[:5]).mean() >= 0.8


@pytest.mark.parametrize("content, message", [
    ({"signature_name": "nope", "instances": [[[[0.0]] * 8] * 8]},
     "Signature 'nope' not found"),
    ({"instances": [[[[True]] * 8] * 8]}, "must be numeric"),
    ({"instances": [[[[1e39]] * 8] * 8]}, "too large for float32"),
    (b"", "not a valid .npy"),
    (b"\xff\xfe{", "not UTF-8"),
    (np.zeros((0, 8, 8, 1), "float32"), "no instances"),
    (np.ones((1, 8, 8, 1), "complex64"), "must be numeric"),
])
def test_predict_rejects_bad_files(workdir, tmp_path, content, message):
    if isinstance(content, np.ndarray):
        request = tmp_path / "request.npy"
        np.save(request, content)
    elif isinstance(content, bytes):
        request = tmp_path / ("empty.npy" if not content else "bad.json")
        request.write_bytes(content)
    else:
        request = tmp_path / "request.json"
        request.write_text(json.dumps(content))
    run = run_zoo("predict", "saved_models/cnn/1", "--input", str(request),
                  cwd=str(workdir["folder"]))
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr
