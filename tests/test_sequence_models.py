"""Tests of the sequence family: windowed series, baselines, the LSTM and
transformer models, their masks in Keras and in exported SavedModels, the
cuDNN-free LSTM export, and the published pretrained artifacts.
"""

import os

import numpy as np
import pytest

import zoo
from training.sequence import padded_sample, set_standardization
from zoo import datasets, series

SEQUENCE_MODELS = ("lstm-forecaster", "transformer-forecaster",
                   "lstm-classifier", "transformer-classifier")


@pytest.fixture(scope="module")
def bundles():
    return {name: datasets.load(name) for name in ("sunspots", "macrodata")}


def _smoke_model(name, bundles):
    spec = zoo.get_spec(name)
    model = zoo.get_model(name, **spec.smoke)
    if spec.task == "time-series-forecasting":
        set_standardization(model, bundles["sunspots"].info["series"])
    return model


# --- windows and splits -----------------------------------------------------

@pytest.mark.parametrize("name", ["sunspots", "macrodata"])
def test_windows_align_with_series(name, bundles):
    bundle = bundles[name]
    info = bundle.info["series"]
    values, _, _ = series.series_features(name)
    window, targets = info["window"], info["target_index"]
    validation_start = window + len(bundle.train)
    test_start = validation_start + len(bundle.validation)

    np.testing.assert_array_equal(bundle.train.x[0], values[:window])
    np.testing.assert_array_equal(bundle.train.y[0], values[window, targets])
    np.testing.assert_array_equal(
        bundle.validation.x[0], values[validation_start - window:
                                       validation_start])
    np.testing.assert_array_equal(bundle.validation.y[0],
                                  values[validation_start, targets])
    np.testing.assert_array_equal(bundle.test.y[0],
                                  values[test_start, targets])
    np.testing.assert_array_equal(bundle.test.x[-1], values[-1 - window:-1])
    np.testing.assert_array_equal(bundle.test.y[-1], values[-1, targets])
    assert test_start + len(bundle.test) == len(values)


def test_splits_are_chronological(bundles):
    steps = bundles["sunspots"].info["target_steps"]
    years = {part: [int(year) for year in span.split("..")]
             for part, span in steps.items()}

    assert years["train"][1] < years["validation"][0]
    assert years["validation"][1] < years["test"][0]
    assert years["test"][1] == 2008


@pytest.mark.parametrize("name", ["sunspots", "macrodata"])
def test_normalization_uses_training_part_only(name, bundles):
    info = bundles[name].info["series"]
    values, _, _ = series.series_features(name)
    validation_start = info["window"] + len(bundles[name].train)
    train = values[:validation_start].astype("float64")

    np.testing.assert_allclose(info["feature_mean"], train.mean(axis=0),
                               rtol=1e-6)
    np.testing.assert_allclose(info["feature_std"], train.std(axis=0),
                               rtol=1e-6)
    whole = values.astype("float64").mean(axis=0)
    assert not np.allclose(info["feature_mean"], whole, rtol=1e-3)


def test_macrodata_features_and_targets(bundles):
    bundle = bundles["macrodata"]

    assert bundle.input_shape == (8, 6)
    assert bundle.train.y.shape[1] == 2
    assert bundle.info["series"]["targets"] == ["gdp_growth", "infl"]


def test_window_dataset_rejects_bad_bounds():
    values = np.zeros((20, 1), dtype="float32")

    with pytest.raises(ValueError, match="window <= start"):
        series.window_dataset(values, values, window=5, start=3, stop=10)


def test_digits_sequence_rows():
    bundle = datasets.load("digits-sequence")
    images = datasets.load("digits")

    assert bundle.input_shape == (8, 8)
    np.testing.assert_array_equal(bundle.test.x, images.test.x[..., 0])


# --- baselines --------------------------------------------------------------

def test_persistence_and_mean_baselines(bundles):
    bundle = bundles["macrodata"]
    info = bundle.info["series"]

    forecasts = series.baseline_forecasts(bundle, bundle.test.x)

    np.testing.assert_allclose(
        forecasts["persistence"],
        bundle.test.x[:, -1, info["target_index"]], rtol=1e-6)
    np.testing.assert_allclose(forecasts["mean"][0],
                               np.asarray(info["feature_mean"])[
                                   info["target_index"]], rtol=1e-6)


def test_ar_baseline_matches_statsmodels(bundles):
    from statsmodels.tsa.ar_model import AutoReg

    bundle = bundles["sunspots"]
    info = bundle.info["series"]
    train_series = np.asarray(info["train_series"])[:, 0]
    fitted = AutoReg(train_series, lags=info["ar_order"], trend="c").fit()
    step = 100  # a target inside the training part

    ours = series.baseline_forecasts(
        bundle, bundle.train.x[step - info["window"]][None])["ar"][0, 0]
    theirs = fitted.predict(start=step, end=step)[0]

    assert ours == pytest.approx(theirs, rel=1e-6)


def test_ar_order_is_validated():
    with pytest.raises(ValueError, match="`order`"):
        series.fit_autoregression(np.arange(10.0), 0)


# --- models -----------------------------------------------------------------

def test_forecaster_rejects_mismatched_statistics(bundles):
    model = zoo.get_model("lstm-forecaster", units=[4])

    with pytest.raises(ValueError, match="num_features"):
        set_standardization(model, bundles["macrodata"].info["series"])


def test_transformer_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="divisible"):
        zoo.get_model("transformer-classifier", hidden_dim=10, num_heads=3)


def test_transformer_rejects_unknown_positional():
    with pytest.raises(ValueError, match="`positional`"):
        zoo.get_model("transformer-forecaster", positional="rotary")


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_padding_matches_unpadded_in_keras(name, bundles):
    model = _smoke_model(name, bundles)
    bundle = (bundles["sunspots"] if "forecaster" in name
              else datasets.load("digits-sequence"))
    inputs = padded_sample(bundle.test.x, 6)
    lengths = inputs["padding_mask"].sum(axis=1)

    padded = np.asarray(model.predict(inputs, verbose=0))

    assert len(set(lengths.tolist())) > 1
    for row, length in enumerate(lengths):
        alone = model.predict({
            "sequence": bundle.test.x[row:row + 1, :length],
            "padding_mask": np.ones((1, length), dtype="int32"),
        }, verbose=0)
        np.testing.assert_allclose(padded[row], alone[0], rtol=1e-5,
                                   atol=1e-5)


# Models whose files are loaded in a fresh process; together they use
# every layer of zoo.layers that the family adds.
FRESH_PROCESS_MODELS = (
    ("lstm-forecaster", {"units": [4, 3]}),
    ("transformer-forecaster", {}),  # learned positions, pre-norm, last step
    ("transformer-classifier", {"positional": "sinusoidal"}),  # post-norm
)


def test_fresh_process_files_match_keras(bundles, tmp_path, fresh_python):
    from training.sequence import SequenceClassifierRecipe
    from zoo import export

    digits = datasets.load("digits-sequence")
    cases = []
    for name, overrides in FRESH_PROCESS_MODELS:
        spec = zoo.get_spec(name)
        model = zoo.get_model(name, **{**spec.smoke, **overrides})
        bundle = digits
        if "forecaster" in name:
            bundle = bundles["sunspots"]
            set_standardization(model, bundle.info["series"])
        inputs = padded_sample(bundle.test.x, 6)
        recipe = SequenceClassifierRecipe(spec, {})
        exported = export.export_saved_model(
            recipe.serving_model(model), spec, base_dir=str(tmp_path))
        folder = tmp_path / f"{name}-data"
        folder.mkdir()
        model.save(folder / "model.keras")
        np.save(folder / "sequence.npy", inputs["sequence"])
        np.save(folder / "padding_mask.npy", inputs["padding_mask"])
        np.save(folder / "full.npy", bundle.test.x[:6])
        np.save(folder / "keras.npy", np.asarray(model.predict(inputs,
                                                               verbose=0)))
        cases.append((exported.path, str(folder), next(iter(spec.outputs))))

    # In the fresh process: the .keras file (safe mode) and the SavedModel
    # reproduce the Keras outputs on a padded batch, and each padded row
    # equals the unpadded sequence sent alone.
    code = f"""
import keras, numpy as np, tensorflow as tf
import zoo.layers
for path, folder, output in {cases!r}:
    sequence = np.load(folder + "/sequence.npy")
    mask = np.load(folder + "/padding_mask.npy")
    full = np.load(folder + "/full.npy")
    expected = np.load(folder + "/keras.npy")
    model = keras.saving.load_model(folder + "/model.keras", safe_mode=True)
    np.testing.assert_allclose(
        model.predict({{"sequence": sequence, "padding_mask": mask}},
                      verbose=0), expected, rtol=1e-5, atol=1e-5)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    padded = serve(sequence=tf.constant(sequence),
                   padding_mask=tf.constant(mask))[output].numpy()
    np.testing.assert_allclose(padded, expected, rtol=1e-5, atol=1e-5)
    for row, length in enumerate(mask.sum(axis=1)):
        alone = serve(sequence=tf.constant(full[row:row + 1, :length]),
                      padding_mask=tf.ones((1, length), tf.int32))[output]
        np.testing.assert_allclose(padded[row], alone.numpy()[0],
                                   rtol=1e-5, atol=1e-5)
    print("EQUAL_OUTPUTS")
"""
    result = fresh_python(code)

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("EQUAL_OUTPUTS") == len(FRESH_PROCESS_MODELS)


def _saved_model_ops(path):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        proto.ParseFromString(handle.read())
    ops = set()
    for graph in proto.meta_graphs:
        ops.update(node.op for node in graph.graph_def.node)
        for function in graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def test_lstm_export_has_no_cudnn_ops(monkeypatch, tmp_path):
    import importlib

    from training.sequence import ForecastRecipe
    from zoo import export

    # Trace as if on a GPU, where `use_cudnn="auto"` picks the cuDNN kernel
    # (Keras 3.15 calls this private function of its TF backend to decide).
    rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")
    monkeypatch.setattr(rnn, "_is_gpu_available", lambda: True)
    spec = zoo.get_spec("lstm-forecaster")
    model = zoo.get_model("lstm-forecaster", units=[4, 3])
    recipe = ForecastRecipe(spec, {})

    as_trained = export.export_saved_model(model, spec,
                                           base_dir=str(tmp_path / "raw"))
    served = export.export_saved_model(recipe.serving_model(model), spec,
                                       base_dir=str(tmp_path / "served"))

    raw_ops = _saved_model_ops(as_trained.path)
    served_ops = _saved_model_ops(served.path)
    assert any(op.startswith("CudnnRNN") for op in raw_ops)
    assert not any(op.startswith("Cudnn") for op in served_ops)
    assert "While" in served_ops or "StatelessWhile" in served_ops


def test_generic_copy_keeps_weights(bundles):
    from zoo.models.lstm import generic_lstm_model

    model = zoo.get_model("lstm-forecaster", units=[4, 3], num_features=6,
                          num_targets=2)
    set_standardization(model, bundles["macrodata"].info["series"])
    copy = generic_lstm_model(model)
    inputs = padded_sample(bundles["macrodata"].test.x, 4)

    assert copy is not model
    assert all(layer.use_cudnn is False for layer in copy.layers
               if layer.__class__.__name__ == "LSTM")
    np.testing.assert_allclose(copy.predict(inputs, verbose=0),
                               model.predict(inputs, verbose=0), rtol=1e-6)


# --- the command line prints the baselines -----------------------------------

def test_train_prints_baselines_beside_model(tmp_path, zoo_command):
    result = zoo_command(
        "train", "lstm-forecaster", "--dataset", "macrodata", "--epochs",
        "1", "--set", "units=[4]", "--set", "num_features=6", "--set",
        "num_targets=2", "--no-export", "--run-dir", str(tmp_path / "run"))

    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines()
                 if ": " in line)
    for key in ("test_mae", "persistence_mae", "mean_mae", "ar_mae",
                "test_mae_gdp_growth", "ar_mae_infl", "mae_vs_persistence"):
        assert key in lines, result.stdout
    assert float(lines["persistence_mae"]) == pytest.approx(2.4915, abs=1e-3)


# --- published artifacts ----------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm-forecaster",
                                  "transformer-forecaster"])
def test_pretrained_forecaster_beats_persistence(name):
    from zoo import hub

    recorded, measured = hub.measure_entry(name, "sunspots")

    assert measured["test_mae"] <= 0.7 * measured["persistence_mae"]
    assert measured["test_mae"] == pytest.approx(recorded["test_mae"],
                                                 rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm-forecaster",
                                  "transformer-forecaster"])
def test_pretrained_macrodata_entry(name):
    from zoo import hub

    recorded, measured = hub.measure_entry(name, "macrodata")

    for key in ("test_mae", "persistence_mae", "mean_mae", "ar_mae"):
        assert measured[key] == pytest.approx(recorded[key], rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm-classifier",
                                  "transformer-classifier"])
def test_pretrained_classifier_accuracy(name):
    from zoo import hub

    recorded, measured = hub.measure_entry(name, "digits")

    assert measured["test_accuracy"] >= 0.95
    assert measured["test_accuracy"] == pytest.approx(
        recorded["test_accuracy"], abs=1e-6)


@pytest.mark.slow
def test_pretrained_lstm_saved_model_is_generic(tmp_path):
    from zoo import hub

    path = hub.extract_saved_model("lstm-forecaster", "sunspots",
                                   str(tmp_path))

    ops = _saved_model_ops(path if isinstance(path, str) else path.path)
    assert not any(op.startswith("Cudnn") for op in ops)
