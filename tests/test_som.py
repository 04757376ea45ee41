"""Self-organizing map: BMU, Kohonen update, schedule, errors, picture."""

import keras
import numpy as np
import pytest

import zoo
from zoo import datasets
from zoo.layers.som import SelfOrganizingMap
from zoo.models import som as som_family


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits-flat")


def test_best_matching_unit_matches_brute_force():
    model = SelfOrganizingMap(3, 4, 5, seed=0)
    x = np.random.default_rng(0).random((30, 5)).astype("float32")
    codebook = np.asarray(model.codebook)
    expected = np.argmin(
        ((x[:, None, :] - codebook[None]) ** 2).sum(-1), axis=1)

    unit, coordinates = model(x)

    np.testing.assert_array_equal(np.asarray(unit), expected)
    np.testing.assert_array_equal(np.asarray(coordinates),
                                  np.stack(np.divmod(expected, 4), axis=-1))


def test_one_sample_step_is_kohonen_rule():
    model = SelfOrganizingMap(2, 3, 4, initial_learning_rate=0.4,
                              initial_radius=1.5, decay_steps=10, seed=1)
    model.compile()
    x = np.random.default_rng(1).random((1, 4)).astype("float32")
    before = np.asarray(model.codebook).copy()
    winner = int(np.argmin(((before - x) ** 2).sum(-1)))
    grid = np.stack(np.divmod(np.arange(6), 3), axis=-1)
    grid_squared = ((grid - grid[winner]) ** 2).sum(-1)
    neighbourhood = np.exp(-grid_squared / (2 * 1.5 ** 2))
    expected = before + 0.4 * neighbourhood[:, None] * (x - before)

    model.train_on_batch(x)

    np.testing.assert_allclose(np.asarray(model.codebook), expected,
                               atol=1e-6)
    assert int(model.iterations_done) == 1


def test_schedule_decays_to_final_values():
    model = SelfOrganizingMap(4, 4, 2, initial_learning_rate=0.5,
                              final_learning_rate=0.01, final_radius=0.5,
                              decay_steps=100)
    start = [float(v) for v in model.schedule(0)]
    middle = [float(v) for v in model.schedule(50)]
    end = [float(v) for v in model.schedule(100)]
    after = [float(v) for v in model.schedule(1000)]

    assert start == pytest.approx([0.5, 2.0])
    assert middle == pytest.approx([0.5 * 0.02 ** 0.5, 2.0 * 0.25 ** 0.5])
    assert end == pytest.approx([0.01, 0.5])
    assert after == pytest.approx(end)


def test_topographic_error_counts_non_neighbours():
    model = SelfOrganizingMap(1, 3, 1)
    model.codebook.assign(np.array([[0.0], [2.0], [1.0]]))
    # 0.4: nearest units 0 and 2 (grid distance 2); 1.6: units 1 and 2.
    x = np.array([[0.4], [1.6]], "float32")

    assert model.topographic_error(x) == pytest.approx(0.5)
    assert model.quantization_error(x) == pytest.approx(0.4)


@pytest.fixture(scope="module")
def trained_map(digits):
    keras.utils.set_random_seed(0)
    model = SelfOrganizingMap(6, 6, 64, decay_steps=5 * 79, seed=0)
    model.compile()
    initial = model.quantization_error(digits.train.x)
    history = model.fit(digits.train.x, epochs=5, batch_size=16, verbose=0,
                        validation_data=(digits.validation.x,))
    return model, initial, history.history


def test_training_lowers_quantization_error(trained_map, digits):
    model, initial, history = trained_map
    per_epoch = history["quantization_error"]

    assert per_epoch == sorted(per_epoch, reverse=True)
    assert model.quantization_error(digits.test.x) < 0.6 * initial
    assert history["val_quantization_error"][-1] < \
        history["val_quantization_error"][0]


def test_trained_map_keeps_topology(trained_map, digits):
    model, _, _ = trained_map

    assert model.topographic_error(digits.test.x) < 0.15


def test_map_picture_and_labels(trained_map, digits, tmp_path):
    model, _, _ = trained_map
    labels, hits = som_family.unit_labels(model, digits.test.x,
                                          digits.test.y)
    path = som_family.plot_map(model, digits.test.x, digits.test.y,
                               str(tmp_path / "map.png"))

    assert labels.shape == (6, 6)
    assert hits.sum() == len(digits.test.x)
    assert len(set(labels[labels >= 0].tolist())) >= 8
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp*"))


def test_plot_rejects_wrong_image_shape(trained_map, digits, tmp_path):
    model, _, _ = trained_map
    with pytest.raises(ValueError, match="image_shape"):
        som_family.plot_map(model, digits.test.x, digits.test.y,
                            str(tmp_path / "map.png"), image_shape=(4, 4))


def test_config_round_trip_keeps_schedule():
    model = SelfOrganizingMap(2, 5, 3, initial_learning_rate=0.3,
                              final_learning_rate=0.02, initial_radius=2.0,
                              final_radius=0.7, decay_steps=42, seed=4)
    rebuilt = SelfOrganizingMap.from_config(model.get_config())

    assert rebuilt.get_config() == model.get_config()


@pytest.mark.parametrize("arguments, message", [
    ({"rows": 0}, "rows"),
    ({"columns": 2.5}, "columns"),
    ({"final_radius": 0}, "final_radius"),
    ({"decay_steps": -1}, "decay_steps"),
    ({"initial_learning_rate": "fast"}, "initial_learning_rate"),
])
def test_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        SelfOrganizingMap(**{"rows": 2, "columns": 2, "input_dim": 3,
                             **arguments})


def test_som_map_experiment_writes_picture(tmp_path):
    from zoo.experiments import som_map

    numbers = som_map.run(str(tmp_path / "map.png"), epochs=2,
                          overrides={"rows": 4, "columns": 4})

    assert (tmp_path / "map.png").stat().st_size > 1000
    assert numbers["quantization_error_per_epoch"][-1] < \
        numbers["initial_quantization_error"]
    assert 0.0 <= numbers["test_topographic_error"] <= 1.0


@pytest.mark.slow
def test_pretrained_map_errors_match_index(digits):
    from zoo import hub

    entry = hub.get_entry("som", "digits")[1]
    model = zoo.get_model("som", weights="digits")
    recorded = entry["metrics"]

    assert model.quantization_error(digits.test.x) == pytest.approx(
        recorded["test_quantization_error"], rel=1e-4)
    assert model.topographic_error(digits.test.x) == pytest.approx(
        recorded["test_topographic_error"], abs=1e-6)
    assert recorded["test_topographic_error"] < 0.1
    untrained = zoo.get_model("som")
    assert model.quantization_error(digits.test.x) < \
        0.8 * untrained.quantization_error(digits.test.x)


def test_published_saved_model_serves_unit(digits, tmp_path):
    from zoo import hub, predict

    target = hub.extract_saved_model("som", "digits", str(tmp_path))
    features = digits.test.x[:3]
    response = predict.predict(target, {"instances": features.tolist()})
    model = zoo.get_model("som", weights="digits", compile=False)
    expected = np.asarray(model.best_matching_unit(features))
    rows = response["predictions"]

    assert [row["unit"] for row in rows] == expected.tolist()
    assert [row["coordinates"] for row in rows] == \
        [[unit // 10, unit % 10] for unit in expected.tolist()]
