"""Tests of transfer learning and prototypical few-shot classification."""

import keras
import numpy as np
import pytest

from training import transfer
from zoo import datasets


def _small_cnn(num_classes):
    import zoo

    keras.utils.set_random_seed(0)
    return zoo.get_model("cnn", filters=[8], dense_units=16,
                         convs_per_block=1, num_classes=num_classes)


def test_transfer_model_freezes_base_and_learns_head():
    bundle = datasets.load("digits")
    base = _small_cnn(10)
    base.compile("adam", "sparse_categorical_crossentropy")
    base.fit(bundle.train.x, bundle.train.y, epochs=3, verbose=0)
    before = [np.asarray(w).copy() for w in base.weights]

    novel = bundle.train.y >= 7
    model = transfer.transfer_model(base, num_classes=3, head_units=(8,))
    model.compile(keras.optimizers.Adam(0.01),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(bundle.train.x[novel], bundle.train.y[novel] - 7,
                        epochs=8, verbose=0)

    assert model.get_layer("probabilities").units == 3
    assert model.layers[1].trainable is False
    assert len(model.trainable_weights) == 4
    for saved, now in zip(before, base.weights):
        np.testing.assert_array_equal(np.asarray(now), saved)
    assert history.history["accuracy"][-1] > 0.6


def test_unfreeze_from_layer():
    model = transfer.transfer_model(_small_cnn(10), num_classes=4)
    names = transfer.unfreeze(model, "embedding")
    base = model.layers[1]

    assert names == ["embedding"]
    assert base.get_layer("embedding").trainable
    assert not base.get_layer("block0_conv0").trainable
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        transfer.unfreeze(model, "nope")


def test_embedding_model_shares_weights():
    base = _small_cnn(10)
    embed = transfer.embedding_model(base)
    images = datasets.load("digits").test.x[:4]

    assert tuple(embed.output.shape) == (None, 16)
    assert base.trainable
    expected = keras.Model(base.inputs[0],
                           base.get_layer("embedding").output)(images)
    np.testing.assert_allclose(np.asarray(embed(images)),
                               np.asarray(expected), atol=1e-6)


def test_prototypical_classifier_on_separated_clusters():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    labels = np.repeat([3, 7, 9], 20)
    points = centers[np.repeat([0, 1, 2], 20)] + rng.normal(
        scale=0.5, size=(60, 2))
    classifier = transfer.PrototypicalClassifier().fit(points[::4],
                                                       labels[::4])
    probabilities = classifier.predict_proba(points)

    np.testing.assert_array_equal(classifier.classes, [3, 7, 9])
    assert np.mean(classifier.predict(points) == labels) > 0.95
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


def test_episodes_have_n_way_k_shot():
    labels = np.repeat(np.arange(6), 25)
    support, query = transfer.sample_episode(
        labels, n_way=5, k_shot=3, n_query=4, rng=np.random.default_rng(1))

    assert len(support) == 15
    assert len(query) == 20
    assert not set(support) & set(query)
    assert len(set(labels[support])) == 5
    assert set(labels[query]) == set(labels[support])
    with pytest.raises(ValueError, match="fewer than"):
        transfer.sample_episode(labels, 5, 20, 10, np.random.default_rng(0))


def test_random_features_give_chance_accuracy():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(5), 40)
    result = transfer.evaluate_episodes(rng.normal(size=(200, 8)), labels,
                                        episodes=100, seed=0)

    assert abs(result["mean_accuracy"] - 0.2) < 0.05


@pytest.mark.slow
def test_fewshot_digits_from_base_digits():
    result = transfer.fewshot_digits(epochs=6, episodes=200, seed=0)

    assert result["base_classes"] == [0, 1, 2, 3, 4]
    assert result["novel_classes"] == [5, 6, 7, 8, 9]
    assert result["embedding"]["episodes"] == 200
    assert result["embedding"]["mean_accuracy"] >= 0.7
    assert result["base_validation_accuracy"] > 0.6


def test_zoo_fewshot_prints_accuracy(capsys):
    from zoo import cli

    code = cli.main(["fewshot", "--epochs", "1", "--episodes", "10",
                     "--pretext", "none"])
    output = capsys.readouterr().out

    assert code == 0
    assert "5-way 5-shot, 10 episodes" in output
    assert "CNN embedding (pretext none): mean accuracy" in output
    assert "raw pixels: mean accuracy" in output
