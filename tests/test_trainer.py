"""The trainer: determinism, run folder, input checks."""

import json
import os

import numpy as np
import pytest

from training import trainer

TINY = {"filters": [4], "dense_units": 8, "convs_per_block": 1}


def _weights(result):
    return [np.asarray(w) for w in result.model.get_weights()]


def test_same_seed_same_weights(tmp_path):
    first = trainer.train("cnn", overrides=TINY, epochs=2, seed=3,
                          steps_per_epoch=5, run_dir=str(tmp_path / "a"))
    second = trainer.train("cnn", overrides=TINY, epochs=2, seed=3,
                           steps_per_epoch=5, run_dir=str(tmp_path / "b"))
    for left, right in zip(_weights(first), _weights(second)):
        np.testing.assert_array_equal(left, right)
    other = trainer.train("cnn", overrides=TINY, epochs=2, seed=4,
                          steps_per_epoch=5, run_dir=str(tmp_path / "c"))
    assert any(not np.array_equal(a, b)
               for a, b in zip(_weights(first), _weights(other)))


def test_run_folder_records_config(tmp_path):
    result = trainer.train("mlp", overrides={"hidden_units": [8]},
                           epochs=1, run_dir=str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"] == "mlp"
    assert config["dataset"] == "digits-flat"
    assert config["hyperparameters"]["hidden_units"] == [8]
    assert config["settings"]["seed"] == 0
    assert os.path.isfile(tmp_path / "curves.png")
    assert "test_accuracy" in result.metrics


def test_data_shape_mismatch_is_explained(tmp_path):
    with pytest.raises(ValueError) as caught:
        trainer.train("cnn", dataset="digits-flat", epochs=1,
                      run_dir=str(tmp_path))
    message = str(caught.value)
    assert "(64,)" in message
    assert "(8, 8, 1)" in message
    assert "--dataset" in message


@pytest.mark.parametrize("setting", [{"epochs": 0}, {"batch_size": -2}])
def test_rejects_bad_settings(tmp_path, setting):
    with pytest.raises(ValueError, match="positive integer"):
        trainer.train("cnn", run_dir=str(tmp_path), **setting)


def test_regressor_trains_on_diabetes(tmp_path):
    result = trainer.train("mlp-regressor", epochs=3,
                           run_dir=str(tmp_path))
    assert "test_mae" in result.metrics
    assert result.metrics["test_mae"] < 1.0


def test_too_few_classes_is_explained(tmp_path):
    with pytest.raises(ValueError, match="num_classes=10") as caught:
        trainer.train("cnn", overrides={**TINY, "num_classes": 5},
                      epochs=1, run_dir=str(tmp_path))
    assert "outputs 5 classes" in str(caught.value)
