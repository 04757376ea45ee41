"""Tests of the modern Hopfield layers, models and the classical network."""

import json
import os

import numpy as np
import pytest

import zoo
from tests.conftest import run_python
from zoo import classical_hopfield as classical
from zoo import hopfield_experiments

keras = pytest.importorskip("keras")

from zoo.layers.hopfield import (  # noqa: E402
    Hopfield,
    HopfieldLayer,
    HopfieldPooling,
    hopfield_energy,
)
from zoo.models import hopfield as models  # noqa: E402

PLAIN = {"normalize_state": False, "normalize_stored": False,
         "normalize_projection": False}
# A pure retrieval `xi <- Y^T softmax(beta Y xi)`: nothing projected.
RETRIEVAL = {**PLAIN, "static_state": True, "static_stored": True,
             "static_projection": True, "use_output_projection": False}


def _random(shape, seed):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# --- Hopfield equals MultiHeadAttention --------------------------------------

@pytest.mark.parametrize("num_heads,key_dim,value_dim,use_bias", [
    (1, 8, None, True),
    (4, 6, 5, True),
    (2, 16, 3, False),
])
def test_hopfield_equals_multi_head_attention(num_heads, key_dim, value_dim,
                                              use_bias):
    query = _random((3, 5, 16), 0)
    key = _random((3, 7, 12), 1)
    value = _random((3, 7, 10), 2)
    attention = keras.layers.MultiHeadAttention(
        num_heads=num_heads, key_dim=key_dim, value_dim=value_dim,
        use_bias=use_bias)
    expected = np.asarray(attention(query, value, key=key))
    hopfield = Hopfield(num_heads=num_heads, key_dim=key_dim,
                        value_dim=value_dim, use_bias=use_bias, **PLAIN)
    hopfield(query, key, value)
    shapes = [w.shape for w in attention.weights]
    assert [w.shape for w in hopfield.weights] == shapes
    hopfield.set_weights(attention.get_weights())

    actual = np.asarray(hopfield(query, key, value))

    np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_hopfield_equals_attention_scores_and_mask():
    query = _random((2, 4, 8), 3)
    stored = _random((2, 6, 8), 4)
    mask = np.ones((2, 4, 6), dtype=bool)
    mask[0, :, 4:] = False
    attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    expected, expected_scores = attention(
        query, stored, attention_mask=mask, return_attention_scores=True)
    hopfield = Hopfield(num_heads=2, key_dim=4, **PLAIN)
    hopfield(query, stored)
    hopfield.set_weights(attention.get_weights())

    actual, association = hopfield(query, stored, association_mask=mask,
                                   return_association=True)

    np.testing.assert_allclose(actual, expected, atol=1e-5)
    np.testing.assert_allclose(association, expected_scores, atol=1e-5)
    assert np.all(np.asarray(association)[0, :, :, 4:] < 1e-6)


# --- energy and retrieval ----------------------------------------------------

@pytest.mark.parametrize("beta", [0.1, 1.0, 8.0])
def test_energy_never_increases(beta):
    stored = np.random.default_rng(5).normal(size=(40, 16))
    state = np.random.default_rng(6).normal(size=(30, 1, 16))
    layer = Hopfield(beta=beta, dtype="float64", **RETRIEVAL)
    energies = [np.asarray(hopfield_energy(state[:, 0], stored, beta))]
    for _ in range(60):
        state = np.asarray(layer(state, stored))
        energies.append(np.asarray(hopfield_energy(state[:, 0], stored,
                                                   beta)))
    energies = np.stack(energies)
    increases = np.diff(energies, axis=0)

    assert increases.max() <= 1e-9 * np.abs(energies).max()
    assert np.all(energies >= -1e-9)


def test_one_update_retrieves_half_zeroed_patterns():
    patterns = classical.random_patterns(1000, 64, seed=7).astype("float32")
    queries = patterns.copy()
    queries[:, 32:] = 0.0
    layer = Hopfield(beta=1.0, **RETRIEVAL)

    modern = np.asarray(layer(queries[:, None, :], patterns))[:, 0]
    recalled = classical.ClassicalHopfield(patterns).retrieve(queries)

    modern_exact = classical.exactly_retrieved(modern, patterns).mean()
    classical_exact = classical.exactly_retrieved(recalled, patterns).mean()
    assert modern_exact >= 0.99
    assert classical_exact <= 0.01


def test_update_steps_follow_tolerance():
    stored = _random((20, 8), 8)
    state = _random((5, 1, 8), 9)
    expected = state[:, 0].astype("float64")
    for _ in range(3):
        expected = classical.modern_update(stored, expected, 0.7)

    three = Hopfield(beta=0.7, max_update_steps=3, update_tolerance=0.0,
                     **RETRIEVAL)(state, stored)
    # A tolerance above every change stops after one state update.
    early = Hopfield(beta=0.7, max_update_steps=10, update_tolerance=1e9,
                     **RETRIEVAL)(state, stored)
    two = classical.modern_update(
        stored, classical.modern_update(stored, state[:, 0], 0.7), 0.7)

    np.testing.assert_allclose(np.asarray(three)[:, 0], expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(early)[:, 0], two, atol=1e-5)


def test_converged_state_is_a_fixed_point():
    stored = classical.random_patterns(30, 32, seed=10).astype("float32")
    queries = stored[:, None, :] * np.where(
        np.random.default_rng(11).random((30, 1, 32)) < 0.2, -1, 1)
    layer = Hopfield(beta=0.5, max_update_steps=50, update_tolerance=1e-6,
                     **RETRIEVAL)

    retrieved = np.asarray(layer(queries.astype("float32"), stored))
    again = classical.modern_update(stored, retrieved[:, 0], 0.5)

    assert np.abs(again - retrieved[:, 0]).max() < 1e-4


# --- layer options -----------------------------------------------------------

def test_association_rows_and_stored_mask():
    layer = Hopfield(num_heads=2, key_dim=4, max_update_steps=3)
    stored_mask = np.array([[True] * 5 + [False] * 2] * 3)

    output, association = layer(_random((3, 4, 8), 12), _random((3, 7, 6),
                                                                 13),
                                stored_mask=stored_mask,
                                return_association=True)

    assert output.shape == (3, 4, 8)
    assert association.shape == (3, 2, 4, 7)
    np.testing.assert_allclose(np.sum(association, axis=-1), 1.0, atol=1e-5)
    assert np.asarray(association)[..., 5:].max() < 1e-6


def test_dropout_acts_only_in_training():
    layer = Hopfield(num_heads=1, key_dim=4, dropout=0.5, seed=1)
    state, stored = _random((2, 6, 8), 14), _random((2, 9, 8), 15)

    first = np.asarray(layer(state, stored, training=False))
    second = np.asarray(layer(state, stored, training=False))
    trained = np.asarray(layer(state, stored, training=True))

    np.testing.assert_array_equal(first, second)
    assert np.abs(trained - first).max() > 1e-3


def test_gradients_flow_through_update_steps():
    import tensorflow as tf

    layer = Hopfield(num_heads=2, key_dim=4, max_update_steps=4,
                     update_tolerance=0.0)
    state = tf.constant(_random((2, 3, 8), 16))
    stored = tf.constant(_random((2, 5, 8), 17))
    layer(state, stored)
    with tf.GradientTape() as tape:
        tape.watch(stored)
        loss = tf.reduce_sum(tf.square(layer(state, stored)))
    gradients = tape.gradient(loss, layer.trainable_weights + [stored])

    assert all(g is not None for g in gradients)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in gradients)
    assert np.abs(np.asarray(gradients[-1])).max() > 0


def test_pooling_and_lookup_shapes():
    sets = _random((4, 9, 3), 18)
    pooled = HopfieldPooling(num_queries=3, num_heads=2, key_dim=4)(sets)
    unflat = HopfieldPooling(num_queries=3, num_heads=2, key_dim=4,
                             flatten=False)(sets)
    lookup = HopfieldLayer(num_patterns=7, key_dim=5, num_heads=2,
                           output_dim=6)
    single = lookup(_random((4, 10), 19))
    sequence = lookup(_random((4, 3, 10), 20))

    assert pooled.shape == (4, 9)
    assert unflat.shape == (4, 3, 3)
    assert single.shape == (4, 6)
    assert sequence.shape == (4, 3, 6)
    assert lookup.stored_patterns.shape == (7, 10)


def test_pooling_ignores_element_order_and_padding():
    model = models.hopfield_set_classifier(
        set_size=None, element_dim=3, num_classes=3, element_units=[8],
        num_blocks=1,
        num_queries=2, num_heads=2, key_dim=4, max_update_steps=2,
        dense_units=8, dropout=0.0)
    sets = _random((2, 11, 3), 21)
    shuffled = sets[:, np.random.default_rng(22).permutation(11)]
    pooling = HopfieldPooling(num_queries=1, key_dim=4)
    padded = np.concatenate([sets, np.zeros((2, 4, 3), "float32")], axis=1)
    mask = np.array([[True] * 11 + [False] * 4] * 2)

    np.testing.assert_allclose(model(sets), model(shuffled), atol=1e-5)
    np.testing.assert_allclose(pooling(sets), pooling(padded, mask=mask),
                               atol=1e-5)


@pytest.mark.parametrize("arguments,fragment", [
    ({"num_heads": 0, "key_dim": 4}, "num_heads=0"),
    ({"key_dim": None}, "key_dim=None"),
    ({"key_dim": 4, "beta": -1.0}, "beta=-1.0"),
    ({"key_dim": 4, "dropout": 1.0}, "dropout=1.0"),
    ({"key_dim": 4, "max_update_steps": 0}, "max_update_steps=0"),
    ({"key_dim": 4, "use_output_projection": False, "output_dim": 3},
     "output_dim=3"),
])
def test_invalid_arguments_name_the_value(arguments, fragment):
    with pytest.raises(ValueError, match=fragment):
        Hopfield(**arguments)


def test_static_size_must_split_into_heads():
    layer = Hopfield(num_heads=3, static_state=True, static_stored=True)

    with pytest.raises(ValueError, match="divisible by `num_heads`"):
        layer(_random((2, 1, 8), 23), _random((2, 4, 8), 24))


def test_layer_configs_round_trip():
    for layer in (
        Hopfield(num_heads=2, key_dim=4, beta=0.3, max_update_steps=3,
                 dropout=0.1, static_projection=True),
        HopfieldPooling(num_queries=2, key_dim=4, flatten=False),
        HopfieldLayer(num_patterns=5, key_dim=4, separate_values=False),
    ):
        config = json.loads(json.dumps(keras.saving.serialize_keras_object(
            layer)))
        rebuilt = keras.saving.deserialize_keras_object(config)

        assert type(rebuilt) is type(layer)
        assert rebuilt.get_config() == layer.get_config()


# --- classical network and capacity ------------------------------------------

def test_classical_energy_never_increases():
    network = classical.ClassicalHopfield(
        classical.random_patterns(12, 40, seed=25))
    states = classical.random_patterns(20, 40, seed=26)
    energies = [network.energy(states)]
    for sweep in range(6):
        states = network.retrieve(states, max_sweeps=1, seed=sweep)
        energies.append(network.energy(states))

    assert np.diff(np.stack(energies), axis=0).max() <= 1e-12
    assert np.all(np.diag(network.weights) == 0)


def test_capacity_classical_fails_modern_holds(tmp_path):
    dim = 64
    counts = [4, 9, 14, 24, 64, 1024]
    curves = hopfield_experiments.capacity_curves(dim=dim, counts=counts,
                                                  max_queries=128, seed=1)
    clean = dict(zip(counts, curves["classical, clean"]))
    modern = dict(zip(counts, curves["modern, half occluded"]))
    path = tmp_path / "capacity.png"
    hopfield_experiments.plot_capacity(curves, str(path))

    assert clean[4] >= 0.95
    assert clean[24] <= 0.1
    # The classical curve falls through one half between 0.14 d and 0.375 d.
    assert clean[9] > 0.5 > clean[24]
    assert max(curves["classical, half occluded"][-2:]) == 0.0
    assert modern[64] >= 0.99
    assert modern[1024] >= 0.99
    assert path.read_bytes().startswith(b"\x89PNG")


def test_experiment_command_is_listed():
    from zoo import cli

    args = cli.build_parser().parse_args(
        ["experiment", "hopfield-capacity", "--out", "capacity.png"])

    assert args.experiment == "hopfield-capacity"
    with pytest.raises(ValueError, match="Unknown experiment"):
        hopfield_experiments.run_experiment("nope", "x.png")


# --- models, pretrained weights and serving ----------------------------------

def test_memory_recipe_stores_and_retrieves():
    from training.recipes import resolve_recipe
    from zoo import datasets

    spec = zoo.get_spec("hopfield-memory")
    bundle = datasets.load("digits-flat")
    model = zoo.get_model("hopfield-memory", num_patterns=200)
    recipe = resolve_recipe(spec, {"seed": 0, "batch_size": 32})
    recipe.compile(model)
    recipe.datasets(bundle)
    history = recipe.fit(model, None, None, [])

    metrics = recipe.evaluate(model, None, bundle)
    stored = model.get_layer("memory").stored_patterns.numpy()

    np.testing.assert_array_equal(stored, models.binarize(
        bundle.train.x[:200]))
    assert "val_occluded_exact" in history.history
    assert model.trainable_weights == []
    assert metrics["test_occluded_exact"] >= 0.8
    assert metrics["test_noisy_exact"] >= 0.9
    with pytest.raises(ValueError, match="num_patterns"):
        models.store_patterns(model, stored[:10])


@pytest.mark.parametrize("name,metric,minimum", [
    ("hopfield-set-classifier", "test_accuracy", 0.93),
    ("hopfield-lookup", "test_accuracy", 0.95),
    ("hopfield-memory", "test_occluded_exact", 0.6),
])
def test_pretrained_metric_measured_again(name, metric, minimum):
    from zoo import hub

    spec = zoo.get_spec(name)
    _, entry = hub.get_entry(name, "digits")
    model = zoo.get_model(name, weights="digits")

    measured = hub.measure(model, spec, entry["dataset"],
                           entry.get("settings"))

    assert "digits" in spec.pretrained
    assert measured[metric] >= minimum
    assert measured[metric] == pytest.approx(entry["metrics"][metric],
                                             abs=1e-4)


_TF1_SERVING = """
import json, sys
import numpy as np
import tensorflow as tf
import keras
import zoo.layers  # noqa: F401

path, keras_path, inputs_path = sys.argv[1:4]
sets = np.load(inputs_path)
graph = tf.Graph()
with tf.compat.v1.Session(graph=graph) as session:
    meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
    signature = meta.signature_def["serving_default"]
    feed = {signature.inputs["sets"].name: sets}
    fetch = signature.outputs["probabilities"].name
    served = session.run(fetch, feed_dict=feed)
loaded = keras.saving.load_model(keras_path)
print(json.dumps({"inputs": sorted(signature.inputs),
                  "outputs": sorted(signature.outputs),
                  "served": served.tolist(),
                  "keras": np.asarray(loaded(sets)).tolist()}))
"""


def test_set_classifier_serves_in_tf1_session(tmp_path):
    from zoo import datasets, export

    spec = zoo.get_spec("hopfield-set-classifier")
    model = zoo.get_model("hopfield-set-classifier", weights="digits")
    sets = datasets.load("digits-sets").test.x[:5]
    expected = np.asarray(model(sets, training=False))
    exported = export.export_saved_model(model, spec,
                                         base_dir=str(tmp_path))
    keras_path = str(tmp_path / "model.keras")
    model.save(keras_path)
    np.save(tmp_path / "sets.npy", sets)

    run = run_python(_TF1_SERVING.replace(
        "sys.argv[1:4]", repr([exported.path, keras_path,
                               str(tmp_path / "sets.npy")])))

    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["inputs"] == ["sets"]
    assert result["outputs"] == ["probabilities"]
    np.testing.assert_allclose(result["served"], expected, atol=1e-5)
    np.testing.assert_allclose(result["keras"], expected, atol=1e-5)
    assert os.path.basename(exported.path) == "1"
