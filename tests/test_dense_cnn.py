"""Dense and CNN families: argument checks and fresh-process round trips."""

import numpy as np
import pytest

import zoo
from tests.conftest import run_python


@pytest.mark.parametrize("name, overrides, message", [
    ("cnn", {"filters": []}, "filters"),
    ("cnn", {"filters": [4, 4, 4, 4]}, "at most 3 blocks"),
    ("cnn", {"input_shape": [8, 8]}, "input_shape"),
    ("cnn", {"dropout": 1.5}, "Received: 1.5"),
    ("cnn", {"num_classes": 1}, "num_classes"),
    ("mlp", {"hidden_units": [0]}, "hidden_units"),
    ("mlp", {"input_dim": -3}, "Received: -3"),
    ("mlp-regressor", {"output_dim": 0}, "output_dim"),
])
def test_builders_reject_bad_arguments(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        zoo.get_model(name, **overrides)


def test_cnn_layer_names():
    model = zoo.get_model("cnn", filters=[8, 16], dense_units=16)
    assert model.get_layer("images").name == "images"
    assert model.get_layer("embedding").units == 16
    assert model.output_shape == (None, 10)
    assert model.get_layer("block1_pool").output.shape[1:3] == (2, 2)


def test_cnn_resizes_for_other_images():
    model = zoo.get_model("cnn", input_shape=[28, 28, 1], filters=[4, 8, 8])
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize("name, shape", [
    ("cnn", (5, 8, 8, 1)),
    ("mlp", (5, 64)),
    ("mlp-regressor", (5, 10)),
])
def test_keras_file_fresh_process(name, shape, tmp_path):
    model = zoo.get_model(name)
    x = np.random.default_rng(0).random(shape).astype("float32")
    expected = model.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)

    code = (
        "import numpy as np, keras\n"
        f"model = keras.saving.load_model({str(path)!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, model.predict(x, verbose=0))\n"
    )
    run = run_python(code)
    assert run.returncode == 0, run.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
