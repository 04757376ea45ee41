"""The serving contract: export checks, extra signatures, warm-up requests,
models.config, negative cases and a killed export.

The fresh-process checks cost a TensorFlow start-up each, so one export of
the CNN with its published digits weights is checked once and its results
are shared by several tests.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import zoo
from tests.conftest import REPO_ROOT, run_zoo
from zoo import export, export_checks

pytestmark = pytest.mark.slow

REQUIRED_CHECKS = (export_checks.OP_AUDIT, export_checks.SIGNATURE,
                   export_checks.FRESH_PROCESS, export_checks.XLA)


@pytest.fixture(scope="module")
def cnn_trained():
    """The CNN with its published digits weights, its recipe and data."""
    from training.recipes import resolve_recipe
    from training.trainer import DEFAULT_SETTINGS
    from zoo import datasets

    spec = zoo.get_spec("cnn")
    return {
        "spec": spec,
        "model": zoo.get_model("cnn", weights="digits"),
        "recipe": resolve_recipe(spec, DEFAULT_SETTINGS),
        "bundle": datasets.load("digits"),
    }


@pytest.fixture(scope="module")
def cnn_export(cnn_trained, tmp_path_factory):
    """Export the CNN with TFLite through every check, as `zoo export`."""
    base = tmp_path_factory.mktemp("saved_models")
    recipe, spec = cnn_trained["recipe"], cnn_trained["spec"]
    serving = recipe.serving_model(cnn_trained["model"])
    inputs = export_checks.sample_inputs(recipe, cnn_trained["bundle"])
    exported, results = export_checks.export_and_check(
        serving, spec, inputs, model=cnn_trained["model"], recipe=recipe,
        hyperparameters=dict(spec.defaults), base_dir=str(base),
        tflite=True)
    return {"base": str(base), "exported": exported, "results": results,
            "serving": serving}


def _regressor_model(layer=None):
    import keras

    inputs = keras.Input((10,), name="features")
    hidden = layer(inputs) if layer is not None else inputs
    outputs = keras.layers.Dense(1, name="predictions")(hidden)
    return keras.Model(inputs, outputs)


def _digits(count):
    from zoo import datasets

    test = datasets.load("digits").test
    return test.x[:count], test.y[:count]


# --- the checks pass on a real export ---------------------------------------

def test_cnn_export_passes_every_check(cnn_export):
    results = {r.name: r for r in cnn_export["results"]}
    assert tuple(results) == export_checks.CHECKS
    for name, result in results.items():
        assert result.status == export_checks.PASS, (name, result.detail)


def test_cnn_export_writes_version_tflite_and_config(cnn_export):
    exported = cnn_export["exported"]
    assert exported.version == 1
    assert exported.signatures == ("serving_default", "classify",
                                   "serving_png")
    assert os.path.isfile(os.path.join(exported.path, "model.tflite"))
    assert os.path.isfile(os.path.join(cnn_export["base"], "models.config"))


def test_classify_and_png_give_float_classes(cnn_export):
    import tensorflow as tf

    images, labels = _digits(60)
    loaded = tf.saved_model.load(cnn_export["exported"].path)
    floats = loaded.signatures["serving_default"](
        images=tf.constant(images))["probabilities"].numpy()
    classify = loaded.signatures["classify"](inputs=tf.constant(
        export.make_examples("images", images)))
    png = loaded.signatures["serving_png"](image_bytes=tf.constant(
        export.encode_png(images)))["probabilities"].numpy()

    float_classes = floats.argmax(axis=1)
    scores = classify["scores"].numpy()
    labels_out = classify["classes"].numpy()
    classify_classes = np.array([
        int(row[index]) for row, index in zip(labels_out,
                                              scores.argmax(axis=1))])
    np.testing.assert_array_equal(classify_classes, float_classes)
    np.testing.assert_array_equal(png.argmax(axis=1), float_classes)
    # The weights are trained: the shared classes are the true digits.
    assert (float_classes == labels).mean() >= 0.95


def test_png_signature_resizes_larger_images(cnn_export):
    import tensorflow as tf

    images, _ = _digits(6)
    larger = np.repeat(np.repeat(images, 4, axis=1), 4, axis=2)
    loaded = tf.saved_model.load(cnn_export["exported"].path)
    served = loaded.signatures["serving_png"](image_bytes=tf.constant(
        export.encode_png(larger)))["probabilities"].numpy()
    expected = cnn_export["serving"](export.decode_images(
        export.encode_png(larger), 8, 8, 1), training=False).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_saved_model_cli_matches_registry(cnn_export):
    path = cnn_export["exported"].path
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    run = subprocess.run([cli, "show", "--dir", path, "--all"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    text = run.stdout
    default = text.split("signature_def['serving_default']")[1].split(
        "signature_def[")[0]
    assert re.search(r"inputs\['images'\] tensor_info:\s+dtype: DT_FLOAT\s+"
                     r"shape: \(-1, 8, 8, 1\)", default)
    assert re.search(r"outputs\['probabilities'\] tensor_info:\s+"
                     r"dtype: DT_FLOAT\s+shape: \(-1, 10\)", default)
    classify = text.split("signature_def['classify']")[1].split(
        "signature_def[")[0]
    assert "Method name is: tensorflow/serving/classify" in classify
    assert "outputs['classes']" in classify
    assert "outputs['scores']" in classify


def test_warmup_records_parse_and_run(cnn_export):
    import tensorflow as tf

    path = cnn_export["exported"].path
    logs = export.read_warmup(path)
    kinds = [log.WhichOneof("log_type") for log in logs]
    assert kinds == ["predict_log", "classify_log", "predict_log"]
    loaded = tf.saved_model.load(path)
    for log in logs:
        if log.HasField("classify_log"):
            request = log.classify_log.request
            feeds = {"inputs": tf.constant([
                e.SerializeToString()
                for e in request.input.example_list.examples])}
        else:
            request = log.predict_log.request
            feeds = {k: tf.constant(tf.make_ndarray(v))
                     for k, v in request.inputs.items()}
        assert request.model_spec.name == "cnn"
        signature = request.model_spec.signature_name
        outputs = loaded.signatures[signature](**feeds)
        for value in outputs.values():
            assert value.shape[0] == export.WARMUP_BATCH


def test_models_config_parses_with_policy(cnn_export):
    base = cnn_export["base"]
    config = export.read_model_config(base)
    entries = list(config.model_config_list.config)
    assert [e.name for e in entries] == ["cnn"]
    assert entries[0].base_path == "/models/cnn"
    assert entries[0].model_platform == "tensorflow"
    assert entries[0].model_version_policy.latest.num_versions == 1

    export.update_model_config(base, "cnn", "specific:1")
    policy = export.read_model_config(base).model_config_list.config[
        0].model_version_policy
    assert list(policy.specific.versions) == [1]
    export.update_model_config(base)
    kept = export.read_model_config(base).model_config_list.config[
        0].model_version_policy
    assert list(kept.specific.versions) == [1]


@pytest.mark.parametrize("policy", ["latest:0", "newest", "specific:a"])
def test_version_policy_rejects_bad_text(policy):
    with pytest.raises(ValueError, match=re.escape(repr(policy))):
        export.parse_version_policy(policy)


def test_subclassed_model_uses_registry_shapes(tmp_path):
    import keras

    @keras.saving.register_keras_serializable(package="zoo_tests")
    class Halves(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(1)

        def call(self, inputs):
            return self.dense(inputs * 0.5)

    spec = zoo.get_spec("mlp-regressor")
    model = Halves()
    features = np.random.default_rng(0).random((4, 10), dtype="float32")
    model(features)
    exported = export.export_saved_model(model, spec, str(tmp_path))
    item = export_checks.ExportUnderTest(spec, exported.path, model,
                                         {"features": features})

    assert exported.signature_inputs == {"features": ((None, 10),
                                                      "float32")}
    assert export_checks.check_signature(exported.path, spec,
                                         model).status == "pass"
    assert export_checks.check_xla(item).status == "pass"


def test_mixed_float16_model_exports_float32(tmp_path):
    import keras

    spec = zoo.get_spec("mlp-regressor")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = spec.build(**spec.smoke)
    finally:
        keras.config.set_dtype_policy(previous)
    exported = export.export_saved_model(model, spec, str(tmp_path))
    features = np.random.default_rng(0).random((4, 10), dtype="float32")
    item = export_checks.ExportUnderTest(spec, exported.path, model,
                                         {"features": features})
    result = export_checks.check_mixed_precision(item)

    assert model.layers[-1].compute_dtype == "float16"
    assert exported.signature_inputs["features"][1] == "float32"
    assert result.status == export_checks.PASS, result.detail
    assert "trained mixed" in result.detail


@pytest.mark.parametrize("op, reason", [
    ("PyFunc", "Python callback"),
    ("EagerPyFunc", "Python callback"),
    ("CudnnRNNV3", "cuDNN-only"),
    ("ZooCustomGather", "not a standard TensorFlow op"),
])
def test_op_problem_names_reason(op, reason):
    assert reason in export_checks.op_problem(op)


@pytest.mark.parametrize("op", ["MatMul", "DecodePng", "ParseExampleV2",
                                "StatefulPartitionedCall"])
def test_op_problem_accepts_standard_ops(op):
    assert export_checks.op_problem(op) is None


# --- negative cases ---------------------------------------------------------

def test_py_function_model_fails_audit_and_xla(tmp_path):
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="zoo_tests")
    class PythonDouble(keras.layers.Layer):
        def call(self, inputs):
            doubled = tf.py_function(lambda x: x * 2, [inputs], tf.float32)
            doubled.set_shape(inputs.shape)
            return doubled

    spec = zoo.get_spec("mlp-regressor")
    model = _regressor_model(PythonDouble())
    exported = export.export_saved_model(model, spec, str(tmp_path))
    audit = export_checks.audit_ops(exported.path)
    item = export_checks.ExportUnderTest(
        spec, exported.path, model,
        {"features": np.ones((3, 10), "float32")})
    xla = export_checks.check_xla(item)

    assert audit.status == export_checks.FAIL
    assert "op EagerPyFunc in signature 'serving_default'" in audit.detail
    assert xla.status == export_checks.FAIL
    assert "EagerPyFunc" in xla.detail


def test_cudnn_rnn_graph_fails_audit(tmp_path):
    import tensorflow as tf

    class CudnnOnly(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec(
            (5, None, 4), tf.float32, name="sequence")])
        def serve(self, sequence):
            # The graph is only built and saved: a CPU cannot run it.
            state = tf.zeros((1, tf.shape(sequence)[1], 3))
            outputs = tf.raw_ops.CudnnRNNV3(
                input=sequence, input_h=state, input_c=state,
                params=tf.zeros((100,)),
                sequence_lengths=tf.fill([tf.shape(sequence)[1]], 5),
                rnn_mode="lstm", is_training=False)
            return {"outputs": outputs[0]}

    module = CudnnOnly()
    path = str(tmp_path / "1")
    tf.saved_model.save(module, path,
                        signatures={"serving_default": module.serve})
    audit = export_checks.audit_ops(path)

    assert audit.status == export_checks.FAIL
    assert "op CudnnRNNV3 in signature 'serving_default' is a cuDNN-only" \
        in audit.detail


def test_failed_check_leaves_no_version(tmp_path):
    import tensorflow as tf

    spec = zoo.get_spec("mlp-regressor")
    model = _regressor_model()

    def numpy_step(features):
        return {"doubled": tf.numpy_function(lambda x: x * 2, [features],
                                             tf.float32)}

    def verify(folder):
        export_checks.raise_on_failure(
            spec.name, [export_checks.audit_ops(folder)])

    with pytest.raises(export_checks.ExportCheckError) as caught:
        export.export_saved_model(
            model, spec, str(tmp_path), verify=verify, extra_endpoints={
                "numpy_step": (numpy_step, [tf.TensorSpec(
                    (None, 10), tf.float32, name="features")])})
    assert "op PyFunc in signature 'numpy_step'" in str(caught.value)
    assert os.listdir(tmp_path / spec.name) == []


def test_python_side_step_is_rejected(tmp_path):
    import tensorflow as tf

    spec = zoo.get_spec("mlp-regressor")

    def python_step(features):
        return {"doubled": tf.constant(np.asarray(features) * 2)}

    with pytest.raises(ValueError, match="Signature 'python_step' cannot be "
                       "traced"):
        export.export_saved_model(
            _regressor_model(), spec, str(tmp_path), extra_endpoints={
                "python_step": (python_step, [tf.TensorSpec(
                    (None, 10), tf.float32, name="features")])})
    assert export.existing_versions(str(tmp_path / spec.name)) == []


def test_signature_names_must_match_registry(tmp_path):
    import tensorflow as tf

    spec = zoo.get_spec("mlp-regressor")
    model = _regressor_model()

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, 10), tf.float32,
                                                    name="x")])
        def serve(self, x):
            return {"predictions": model(x)}

    module = Module()
    module.model = model
    path = str(tmp_path / "1")
    tf.saved_model.save(module, path,
                        signatures={"serving_default": module.serve})
    result = export_checks.check_signature(path, spec)

    assert result.status == export_checks.FAIL
    assert "signature 'serving_default'" in result.detail
    assert "input names ['x'] differ from the registry's ['features']" in \
        result.detail


# --- a killed export ----------------------------------------------------------

_KILLED_EXPORT = """
import sys, time
import zoo
from zoo import export
import keras
spec = zoo.get_spec("mlp-regressor")
model = spec.build(**spec.smoke)
def verify(folder):
    open(sys.argv[2], "w").close()
    time.sleep(120)
export.export_saved_model(model, spec, sys.argv[1], verify=verify)
"""


def test_killed_export_leaves_no_loadable_version(tmp_path):
    base = tmp_path / "saved_models"
    marker = tmp_path / "writing"
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_EXPORT, str(base), str(marker)],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not marker.exists() and process.poll() is None and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), process.stderr.read()[-2000:]
    # The SavedModel is fully written but not yet renamed into place.
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    model_base = base / "mlp-regressor"
    entries = os.listdir(model_base)

    assert len(entries) == 1
    assert entries[0].startswith(".tmp-")
    assert (model_base / entries[0] / "saved_model.pb").is_file()
    # TF Serving loads only folders named by an integer.
    assert not [e for e in entries if e.isdigit()]
    assert export.existing_versions(str(model_base)) == []
    assert export.servable_models(str(base)) == []

    spec = zoo.get_spec("mlp-regressor")
    result = export.export_saved_model(spec.build(**spec.smoke), spec,
                                       str(base))
    assert result.version == 1
    assert sorted(os.listdir(model_base)) == ["1"]


def test_stale_temporaries_removed_live_kept(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; "
                               "print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead_pid = int(finished.stdout)
    dead = tmp_path / f".tmp-2-{dead_pid}-abcd1234"
    live = tmp_path / f".tmp-3-{os.getpid()}-abcd1234"
    dead.mkdir()
    live.mkdir()

    removed = export.clean_stale_temporaries(str(tmp_path))

    assert removed == [str(dead)]
    assert live.is_dir()
    old = time.time() + export.STALE_SECONDS + 1
    assert export.clean_stale_temporaries(str(tmp_path), now=old) == [
        str(live)]


# --- the command line ---------------------------------------------------------

def test_cli_export_prints_serving_commands(tmp_path):
    base = tmp_path / "served"
    run = run_zoo("export", "cnn", "--weights", "digits", "--base", str(base),
                  "--skip-checks", "--format", "tflite",
                  "--version-policy", "latest:2", cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    output = run.stdout
    assert f"-v {base}/cnn:/models/cnn -e MODEL_NAME=cnn" in output
    assert "--model_config_file=/models/models.config" in output
    bodies = re.findall(r"curl -d '(.*?)' (\S+)", output)
    assert [url.rsplit(":", 1)[1] for _, url in bodies] == [
        "predict", "classify", "predict"]
    predict, classify, png = (json.loads(body) for body, _ in bodies)
    assert np.asarray(predict["instances"]).shape == (1, 8, 8, 1)
    assert len(classify["examples"][0]["images"]) == 64
    assert "b64" in png["instances"][0]["image_bytes"]
    assert (base / "cnn" / "1" / "model.tflite").is_file()
    policy = export.read_model_config(str(base)).model_config_list.config[
        0].model_version_policy
    assert policy.latest.num_versions == 2


# --- the export matrix --------------------------------------------------------

def test_render_matrix_marks_failures():
    results = {name: export_checks.CheckResult(name, export_checks.PASS)
               for name in export_checks.CHECKS}
    results[export_checks.XLA] = export_checks.CheckResult(
        export_checks.XLA, export_checks.FAIL, "op EagerPyFunc")
    rows = [export_checks.MatrixRow("demo", "dense", "regression",
                                    ("serving_default",), results)]
    page = export_checks.render_matrix(rows)
    row = next(line for line in page.splitlines()
               if line.startswith("| demo"))
    assert row.count("| pass ") == len(export_checks.CHECKS) - 1
    assert "FAIL [1]" in row
    assert "1. demo, XLA: op EagerPyFunc" in page
    assert "0 of 1 models pass every check" in page


def test_matrix_doc_covers_every_model():
    path = os.path.join(REPO_ROOT, "docs", "export-matrix.md")
    with open(path) as handle:
        lines = handle.read().splitlines()
    header = next(line for line in lines if line.startswith("| model"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    rows = {}
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] in zoo.list_models():
            rows[cells[0]] = dict(zip(columns, cells))
    missing = sorted(set(zoo.list_models()) - set(rows))
    assert not missing, f"regenerate with `zoo export-matrix`: {missing}"
    for name, row in rows.items():
        for check in REQUIRED_CHECKS:
            assert row[check] == "pass", (name, check)
