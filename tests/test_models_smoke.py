"""The smoke test every registered model passes, parametrized over the
registry: so each family added later is covered without new test code.

For each model, on its tiny `smoke` configuration: one training step on its
real default data through the real trainer, a config round trip through
JSON, a `.keras` save and load with equal outputs, and a SavedModel export
whose `serving_default` signature reproduces the Keras outputs.
"""

import json
import os

import numpy as np
import pytest

import zoo

MAX_SMOKE_PARAMETERS = 2_000_000


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train each model once for one step and cache the result."""
    from training import trainer

    cache = {}

    def get(name):
        if name not in cache:
            spec = zoo.get_spec(name)
            run_dir = tmp_path_factory.mktemp(name)
            cache[name] = trainer.train(
                name, overrides=dict(spec.smoke), epochs=1,
                steps_per_epoch=1, run_dir=str(run_dir),
            )
        return cache[name]

    return get


def _serving_outputs(model, inputs):
    values = list(inputs.values())
    result = model(values if len(values) > 1 else values[0], training=False)
    if not isinstance(result, (list, tuple)):
        result = [result]
    return [np.asarray(r) for r in result]


@pytest.mark.parametrize("name", zoo.list_models())
def test_smoke_one_training_step(name, trained):
    result = trained(name)
    spec = zoo.get_spec(name)

    assert os.path.isfile(os.path.join(result.run_dir, "metrics.json"))
    assert os.path.isfile(os.path.join(result.run_dir, "config.json"))
    assert result.metrics, f"{name} reported no test metrics"
    for key, value in result.metrics.items():
        assert np.isfinite(value), f"{name}: metric {key} is {value}"
    assert result.model.count_params() <= MAX_SMOKE_PARAMETERS
    assert spec.task in zoo.registry.TASKS


@pytest.mark.parametrize("name", zoo.list_models())
def test_smoke_config_round_trip(name, trained):
    import keras

    model = trained(name).model
    config = keras.saving.serialize_keras_object(model)
    rebuilt = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(config)))

    assert rebuilt.count_params() == model.count_params()
    assert len(rebuilt.weights) == len(model.weights)


@pytest.mark.parametrize("name", zoo.list_models())
def test_smoke_keras_file_round_trip(name, trained, tmp_path):
    import keras

    import zoo.layers  # noqa: F401

    result = trained(name)
    path = str(tmp_path / f"{name}.keras")
    result.model.save(path)
    loaded = keras.saving.load_model(path)
    inputs = result.recipe.sample_inputs(result.bundle, count=4)

    expected = _serving_outputs(result.recipe.serving_model(result.model),
                                inputs)
    actual = _serving_outputs(result.recipe.serving_model(loaded), inputs)
    for want, got in zip(expected, actual):
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("name", zoo.list_models())
def test_smoke_export_and_reload(name, trained, tmp_path):
    import tensorflow as tf

    from zoo import export

    result = trained(name)
    spec = zoo.get_spec(name)
    serving = result.recipe.serving_model(result.model)
    exported = export.export_saved_model(serving, spec,
                                         base_dir=str(tmp_path))

    assert exported.path.endswith(os.path.join(name, "1"))
    signature = tf.saved_model.load(exported.path).signatures[
        "serving_default"]
    _, input_specs = signature.structured_input_signature
    assert set(input_specs) == set(spec.inputs)
    assert set(signature.structured_outputs) == set(spec.outputs)

    inputs = result.recipe.sample_inputs(result.bundle, count=4)
    outputs = signature(**{k: tf.constant(v) for k, v in inputs.items()})
    expected = _serving_outputs(serving, inputs)
    for output_name, want in zip(spec.outputs, expected):
        # The relative term covers outputs in data units (a sunspot
        # forecast near 100), where float32 graph and eager kernels
        # differ by a few 1e-5 in absolute terms.
        np.testing.assert_allclose(outputs[output_name].numpy(), want,
                                   rtol=1e-5, atol=1e-5)
