"""Registry: records, decorator, listing, lookup errors, no TensorFlow."""

import time

import pytest

import zoo
from zoo import registry
from tests.conftest import run_python, run_zoo


def _builder(units=4):
    """Tiny test builder."""
    import keras

    inputs = keras.Input((3,), name="features")
    return keras.Model(inputs, keras.layers.Dense(units)(inputs))


@pytest.fixture
def cleanup():
    added = []
    yield added
    for name in added:
        if name in registry._REGISTRY:
            registry.unregister_model(name)


def _register(name, **changes):
    arguments = dict(
        family="test", task="regression",
        inputs={"features": ((None, 3), "float32")},
        outputs={"predictions": ((None, 4), "float32")},
        dataset="diabetes", defaults={"units": 4},
    )
    arguments.update(changes)
    return zoo.register_model(name, **arguments)(_builder)


def test_register_model_adds_record(cleanup):
    cleanup.append("user-model")
    _register("user-model")

    spec = zoo.get_spec("user-model")
    assert spec.description == "Tiny test builder."
    assert spec.inputs["features"].shape == (None, 3)
    assert "user-model" in zoo.list_models("user-*")


def test_register_model_warns_on_overwrite(cleanup):
    cleanup.append("user-model")
    _register("user-model")

    with pytest.warns(UserWarning, match="already registered"):
        _register("user-model", defaults={"units": 8})
    assert zoo.get_spec("user-model").defaults["units"] == 8


@pytest.mark.parametrize("changes, message", [
    ({"task": "telepathy"}, "task"),
    ({"inputs": {}}, "inputs"),
    ({"inputs": {"bad name": (None, 3)}}, "identifiers"),
    ({"inputs": {"features": (3,)}}, "dynamic batch"),
    ({"dataset": ""}, "dataset"),
    ({"smoke": {"width": 2}}, "smoke"),
])
def test_register_model_rejects_invalid(changes, message, cleanup):
    cleanup.append("bad-model")
    with pytest.raises(ValueError, match=message):
        _register("bad-model", **changes)
    assert "bad-model" not in registry._REGISTRY


def test_register_model_rejects_bad_name():
    with pytest.raises(ValueError, match="Received: name='Bad Name'"):
        _register("Bad Name")


def test_list_models_filters():
    assert zoo.list_models("cnn*") == ["cnn"]
    assert set(zoo.list_models(task="image-classification")) >= {"cnn",
                                                                 "mlp"}
    assert "mlp-regressor" in zoo.list_models(task="regression")
    assert "mlp-regressor" not in zoo.list_models(pretrained=True)
    assert set(zoo.list_models(family="dense")) >= {"mlp", "mlp-regressor"}


def test_list_models_unknown_task():
    with pytest.raises(ValueError, match="Unknown task 'vision'"):
        zoo.list_models(task="vision")


def test_unknown_name_suggests_close_names():
    with pytest.raises(zoo.UnknownModelError) as caught:
        zoo.get_spec("cnnn")
    message = str(caught.value)
    assert "'cnnn'" in message
    assert "Did you mean: cnn" in message
    assert "zoo list" in message


def test_unknown_hyperparameter_lists_valid():
    with pytest.raises(ValueError, match="filterz") as caught:
        zoo.get_model("cnn", filterz=[4])
    assert "dense_units" in str(caught.value)


def test_model_info_is_json_ready():
    import json

    info = zoo.model_info("cnn")
    assert info["inputs"] == {"images": {"shape": [None, 8, 8, 1],
                                         "dtype": "float32"}}
    assert info["outputs"]["probabilities"]["shape"] == [None, 10]
    assert info["dataset"] == "digits"
    assert json.loads(json.dumps(info)) == info


def test_import_zoo_loads_no_tensorflow():
    code = (
        "import sys, zoo\n"
        "zoo.list_models(); zoo.model_info('cnn')\n"
        "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_zoo_list_is_fast_and_light():
    code = (
        "import sys, time\n"
        "start = time.perf_counter()\n"
        "from zoo.cli import main\n"
        "main(['list'])\n"
        "print('SECONDS', time.perf_counter() - start)\n"
        "print('TF', 'tensorflow' in sys.modules)\n"
    )
    started = time.perf_counter()
    run = run_python(code)
    total = time.perf_counter() - started
    assert run.returncode == 0, run.stderr
    assert "TF False" in run.stdout
    assert "cnn" in run.stdout
    seconds = float(run.stdout.split("SECONDS")[1].split()[0])
    assert seconds < 1.0
    assert total < 5.0


def test_cli_list_no_match_exits_nonzero():
    run = run_zoo("list", "nothing-like-this*")
    assert run.returncode == 1
    assert "zoo list" in run.stderr


def test_cli_unknown_model_error():
    run = run_zoo("train", "cnnn")
    assert run.returncode == 2
    assert "Unknown model name: 'cnnn'" in run.stderr
    assert "Did you mean: cnn" in run.stderr
    assert "Traceback" not in run.stderr


def test_cli_bad_set_value():
    run = run_zoo("info", "cnn", "--set", "dropout")
    assert run.returncode == 2
    assert "KEY=VALUE" in run.stderr



@pytest.mark.parametrize("overrides, message", [
    ({"filters": 16}, "must be a list"),
    ({"dropout": "abc"}, "must be a number"),
    ({"num_classes": 2.5}, "must be an integer"),
    ({"num_classes": True}, "must be an integer"),
])
def test_hyperparameter_types_checked(overrides, message):
    with pytest.raises(ValueError, match=message) as caught:
        zoo.get_model("cnn", **overrides)
    assert "--set" in str(caught.value)


def test_cli_set_wrong_type_is_clean():
    run = run_zoo("info", "cnn", "--set", "filters=16")
    assert run.returncode == 2
    assert "must be a list" in run.stderr
    assert "Traceback" not in run.stderr
