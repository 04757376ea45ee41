"""DCGAN family: architecture, GAN training step, saving, monitoring,
sample metrics, TF Serving export and the published digits generator.

Training here is one or two steps on tiny networks. The sample-quality
claims are checked on the generator published in the repository's hub,
which `zoo hub rebuild --only dcgan:digits` trains with the default
recipe.
"""

import json
import os

import numpy as np
import pytest

import zoo
from training import gan as gan_training
from zoo import gan_eval

SMOKE = dict(zoo.get_spec("dcgan").smoke)
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _recipe(**settings):
    from training.recipes import resolve_recipe
    from training.trainer import DEFAULT_SETTINGS

    spec = zoo.get_spec("dcgan")
    return resolve_recipe(spec, {**DEFAULT_SETTINGS, **spec.training,
                                 **settings})


@pytest.fixture(scope="module")
def digits():
    from zoo import datasets

    return datasets.load("digits")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One training step of the tiny DCGAN through the real trainer."""
    from training import trainer

    run_dir = tmp_path_factory.mktemp("dcgan-run")
    return trainer.train("dcgan", overrides=SMOKE, epochs=1,
                         steps_per_epoch=1, run_dir=str(run_dir))


# --- architecture -----------------------------------------------------------

@pytest.mark.parametrize("image_shape, generator_filters", [
    ([8, 8, 1], [16, 8]),
    ([28, 28, 1], [16, 8]),
    ([32, 32, 3], [16, 8, 8]),
])
def test_builders_fit_configured_sizes(image_shape, generator_filters):
    model = zoo.get_model("dcgan", image_shape=image_shape, latent_dim=10,
                          generator_filters=generator_filters,
                          discriminator_filters=[8, 16])

    images = model.generate(3)
    logits = model.discriminator(images)

    assert tuple(images.shape) == (3, *image_shape)
    assert tuple(logits.shape) == (3, 1)
    assert float(np.abs(images).max()) <= 1.0


def _layers_of(model, kind):
    import keras

    return [layer for layer in model.layers
            if isinstance(layer, getattr(keras.layers, kind))]


def test_generator_follows_dcgan_guidelines():
    import keras

    generator = zoo.get_model("dcgan").generator

    transposed = _layers_of(generator, "Conv2DTranspose")
    assert [layer.strides for layer in transposed] == [(2, 2), (2, 2)]
    assert not [layer for layer in generator.layers
                if "Pooling" in type(layer).__name__]
    assert len(_layers_of(generator, "BatchNormalization")) == 2
    assert len(_layers_of(generator, "ReLU")) == 2
    output = generator.layers[-1]
    assert isinstance(output, keras.layers.Conv2DTranspose)
    assert output.activation.__name__ == "tanh"


def test_discriminator_follows_dcgan_guidelines():
    import keras

    discriminator = zoo.get_model("dcgan").discriminator

    convolutions = _layers_of(discriminator, "Conv2D")
    assert [layer.strides for layer in convolutions] == [(2, 2), (2, 2)]
    assert not [layer for layer in discriminator.layers
                if "Pooling" in type(layer).__name__]
    # No batch normalization on the block that reads the images.
    first_block = discriminator.layers[1:3]
    assert isinstance(first_block[0], keras.layers.Conv2D)
    assert isinstance(first_block[1], keras.layers.LeakyReLU)
    assert len(_layers_of(discriminator, "BatchNormalization")) == 1
    slopes = [layer.negative_slope
              for layer in _layers_of(discriminator, "LeakyReLU")]
    assert slopes == pytest.approx([0.2, 0.2])


def test_weights_start_from_normal_0_02():
    model = zoo.get_model("dcgan")
    kernels = [w for w in model.generator.weights + model.discriminator.weights
               if w.path.endswith("kernel")]
    largest = max(kernels, key=lambda w: int(np.prod(w.shape)))

    assert len(kernels) == 6
    values = np.asarray(largest).ravel()
    assert abs(values.mean()) < 0.002
    assert values.std() == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize("overrides, message", [
    ({"image_shape": [10, 10, 1]}, "divisible by 4"),
    ({"latent_dim": 0}, "latent_dim"),
    ({"generator_filters": []}, "filters"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"generator_objective": "wasserstein"}, "generator_objective"),
])
def test_builder_rejects_invalid_hyperparameters(overrides, message):
    with pytest.raises(ValueError, match=message):
        zoo.get_model("dcgan", **overrides)


# --- losses and the training step ---------------------------------------

def test_discriminator_loss_with_one_sided_smoothing():
    from zoo.layers.gan import discriminator_loss

    real, fake = np.full((4, 1), 2.0, "float32"), np.full((4, 1), -1.0,
                                                          "float32")
    sigmoid = 1.0 / (1.0 + np.exp(-2.0))
    for smoothing in (0.0, 0.1):
        target = 1.0 - smoothing
        expected = (-target * np.log(sigmoid)
                    - (1.0 - target) * np.log(1.0 - sigmoid)
                    - np.log(1.0 - 1.0 / (1.0 + np.exp(1.0))))

        loss = float(discriminator_loss(real, fake, smoothing))

        assert loss == pytest.approx(expected, rel=1e-5)


def test_generator_objectives():
    from zoo.layers.gan import generator_loss

    logits = np.full((3, 1), 0.5, "float32")
    d = 1.0 / (1.0 + np.exp(-0.5))

    assert float(generator_loss(logits)) == pytest.approx(-np.log(d),
                                                          rel=1e-5)
    assert float(generator_loss(logits, "minimax")) == pytest.approx(
        np.log(1.0 - d), rel=1e-5)
    with pytest.raises(ValueError, match="objective"):
        generator_loss(logits, "hinge")


def test_train_step_updates_both_networks(digits):
    import keras

    model = zoo.get_model("dcgan", **SMOKE)
    recipe = _recipe(batch_size=16)
    recipe.compile(model)
    train, _, _ = recipe.datasets(digits)
    before = [np.array(w) for w in model.trainable_weights]

    logs = model.train_on_batch(next(iter(train))[0], return_dict=True)

    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert 0.0 < logs["d_real"] < 1.0
    assert 0.0 < logs["d_fake"] < 1.0
    changed = [not np.allclose(b, np.array(w))
               for b, w in zip(before, model.trainable_weights)]
    assert all(changed)
    for optimizer in (model.discriminator_optimizer,
                      model.generator_optimizer):
        assert isinstance(optimizer, keras.optimizers.Adam)
        assert float(optimizer.learning_rate) == pytest.approx(2e-4)
        assert optimizer.beta_1 == pytest.approx(0.5)
        assert int(optimizer.iterations) == 1


def test_evaluate_is_repeatable(digits):
    model = zoo.get_model("dcgan", **SMOKE)
    recipe = _recipe(batch_size=16)
    recipe.compile(model)
    _, _, test = recipe.datasets(digits)

    first = model.evaluate(test, verbose=0, return_dict=True)
    second = model.evaluate(test, verbose=0, return_dict=True)

    assert first == second


def test_datasets_scale_to_tanh_range(digits):
    recipe = _recipe(batch_size=32)

    train, validation, _ = recipe.datasets(digits)
    x, _ = next(iter(train))
    all_validation = np.concatenate([b[0] for b in validation])

    assert x.shape[0] == 32
    assert float(np.min(all_validation)) == pytest.approx(-1.0)
    assert float(np.max(all_validation)) == pytest.approx(1.0)


def test_datasets_reject_pixels_outside_unit_range(digits):
    import dataclasses

    from zoo.datasets import Split

    scaled = dataclasses.replace(
        digits, train=Split(digits.train.x * 255.0, digits.train.y))

    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _recipe().datasets(scaled)


# --- saving and resuming ------------------------------------------------

RESUME_SCRIPT = """
import json, sys
import numpy as np
import keras
import zoo.layers
from zoo import datasets
from training.gan import GanRecipe
import zoo

path, moments_path = sys.argv[1], sys.argv[2]
model = keras.saving.load_model(path)
saved = np.load(moments_path)
restored = [np.array(v) for v in
            model.discriminator_optimizer.variables
            + model.generator_optimizer.variables]
same = all(np.array_equal(a, saved[f"v{i}"])
           for i, a in enumerate(restored))
counts = [int(model.discriminator_optimizer.iterations),
          int(model.generator_optimizer.iterations)]
recipe = GanRecipe(zoo.get_spec("dcgan"), json.loads(sys.argv[3]))
train, _, _ = recipe.datasets(datasets.load("digits"))
model.fit(train.take(4), epochs=1, verbose=0, shuffle=False)
print(json.dumps({"same_moments": same, "loaded": counts, "after": [
    int(model.discriminator_optimizer.iterations),
    int(model.generator_optimizer.iterations)]}))
"""


def test_saved_gan_resumes_in_fresh_process(digits, tmp_path):
    import subprocess
    import sys

    import keras

    settings = {"learning_rate": 2e-4, "batch_size": 16, "seed": 0}
    model = zoo.get_model("dcgan", **SMOKE)
    recipe = _recipe(**settings)
    recipe.compile(model)
    train, _, _ = recipe.datasets(digits)
    steps_per_epoch = 4
    model.fit(train.take(steps_per_epoch), epochs=1, verbose=0,
              shuffle=False)
    path = str(tmp_path / "gan.keras")
    model.save(path)
    variables = (model.discriminator_optimizer.variables
                 + model.generator_optimizer.variables)
    moments = str(tmp_path / "moments.npz")
    np.savez(moments, **{f"v{i}": np.array(v)
                         for i, v in enumerate(variables)})
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)

    result = subprocess.run(
        [sys.executable, str(script), path, moments, json.dumps(settings)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": REPO_ROOT})

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["same_moments"]
    assert report["loaded"] == [steps_per_epoch, steps_per_epoch]
    assert report["after"] == [2 * steps_per_epoch, 2 * steps_per_epoch]
    assert isinstance(keras.saving.load_model(path).generator_optimizer,
                      keras.optimizers.Adam)


# --- interpolation and images -------------------------------------------

def test_slerp_keeps_norm_and_lerp_does_not():
    rng = np.random.default_rng(0)
    for _ in range(20):
        start, end = rng.standard_normal((2, 100))
        path = gan_training.slerp(start, end, 11)
        norms = np.linalg.norm(path, axis=1)
        expected = np.linspace(np.linalg.norm(start), np.linalg.norm(end), 11)

        np.testing.assert_allclose(norms, expected, rtol=0.01)
        np.testing.assert_allclose(path[0], start, atol=1e-5)
        np.testing.assert_allclose(path[-1], end, atol=1e-5)

    middle = gan_training.lerp(start, end, 11)[5]
    assert np.linalg.norm(middle) < 0.85 * expected[5]


def test_slerp_moves_at_constant_angle():
    start, end = np.eye(3)[0] * 2.0, np.eye(3)[1] * 2.0

    path = gan_training.slerp(start, end, 5)
    angles = np.degrees(np.arctan2(path[:, 1], path[:, 0]))

    np.testing.assert_allclose(angles, [0.0, 22.5, 45.0, 67.5, 90.0],
                               atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 2.0, rtol=1e-6)


def test_slerp_handles_antipodal_and_rejects_zero():
    start = np.array([1.0, 0.0, 0.0])

    path = gan_training.slerp(start, -start, 3)

    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0, rtol=1e-6)
    assert abs(float(path[1] @ start)) < 1e-6
    with pytest.raises(ValueError, match="non-zero"):
        gan_training.slerp(start, np.zeros(3), 3)
    with pytest.raises(ValueError, match="steps"):
        gan_training.slerp(start, start, 1)


def test_run_writes_sample_grid_and_strips(smoke_run):
    import matplotlib.image

    run_dir = smoke_run.run_dir
    paths = [os.path.join(run_dir, "samples", "epoch-0001.png"),
             os.path.join(run_dir, "interpolation_linear.png"),
             os.path.join(run_dir, "interpolation_slerp.png")]

    for path in paths:
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 50, path
        assert image.shape[1] > 50, path
    linear = matplotlib.image.imread(paths[1])
    spherical = matplotlib.image.imread(paths[2])
    assert linear.shape == spherical.shape
    assert not np.array_equal(linear, spherical)


# --- sample metrics -----------------------------------------------------

def test_frechet_distance_matches_matrix_square_root():
    from scipy import linalg

    rng = np.random.default_rng(0)
    a = rng.standard_normal((400, 6)) @ rng.standard_normal((6, 6))
    b = rng.standard_normal((300, 6)) @ rng.standard_normal((6, 6)) + 0.5
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = (np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b)
                - 2.0 * np.trace(linalg.sqrtm(cov_a @ cov_b).real))

    assert gan_eval.frechet_distance(a, b) == pytest.approx(expected,
                                                            rel=1e-6)
    assert gan_eval.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_with_singular_covariance():
    rng = np.random.default_rng(1)
    features = np.zeros((200, 8))
    features[:, :3] = rng.standard_normal((200, 3))

    distance = gan_eval.frechet_distance(features, features + 1.0)

    assert distance == pytest.approx(8.0, abs=1e-6)


def test_inception_score_bounds():
    confident = np.eye(10)[np.arange(1000) % 10]
    uniform = np.full((50, 10), 0.1)

    assert gan_eval.inception_score(confident) == pytest.approx(10.0,
                                                                rel=1e-6)
    assert gan_eval.inception_score(uniform) == pytest.approx(1.0)
    coverage = gan_eval.class_coverage(confident)
    assert coverage["min_class_fraction"] == pytest.approx(0.1)
    assert coverage["mean_top_probability"] == pytest.approx(1.0)


def test_classifier_trained_without_pretrained_weights(digits):
    import dataclasses

    from zoo.datasets import Split

    # Another name than "digits" makes `load_classifier` train its own.
    small = dataclasses.replace(
        digits, name="digits-subset",
        train=Split(digits.train.x[:400], digits.train.y[:400]))

    classifier = gan_eval.load_classifier(small, epochs=12)
    _, probabilities = gan_eval.FeatureExtractor(classifier)(small.test.x)
    accuracy = np.mean(probabilities.argmax(axis=1) == small.test.y)

    assert classifier.get_layer("embedding") is not None
    assert accuracy > 0.8
    assert gan_eval.load_classifier(small) is classifier


def test_run_reports_metrics_with_references(smoke_run):
    metrics = smoke_run.metrics

    for key in ("fd", "fd_real", "fd_noise", "fd_ratio", "inception_score",
                "inception_score_real", "inception_score_noise",
                "min_class_fraction", "mean_top_probability",
                "test_d_loss", "test_g_loss", "test_d_real", "test_d_fake"):
        assert np.isfinite(metrics[key]), key
    assert metrics["fd_real"] < 0.1 * metrics["fd_noise"]
    assert metrics["inception_score_real"] > 9.0
    assert metrics["fd_ratio"] == pytest.approx(
        metrics["fd"] / metrics["fd_noise"])


# --- export -------------------------------------------------------------

def test_exported_generator_matches_keras(smoke_run, tmp_path):
    import tensorflow as tf

    from zoo import export
    from zoo import predict

    spec = zoo.get_spec("dcgan")
    recipe, model = smoke_run.recipe, smoke_run.model
    exported = export.export_saved_model(recipe.serving_model(model), spec,
                                         base_dir=str(tmp_path))
    latent = recipe.sample_inputs(smoke_run.bundle, count=6)["latent"]
    expected = (np.asarray(model.generator(latent, training=False)) + 1) / 2

    # TF Serving loads the `serve` tag and calls the signature by name.
    loaded = tf.saved_model.load(exported.path, tags=["serve"])
    signature = loaded.signatures["serving_default"]
    _, inputs = signature.structured_input_signature
    outputs = signature(latent=tf.constant(latent))
    response = predict.predict(exported.path,
                               {"instances": latent.tolist()})

    assert list(inputs) == ["latent"]
    assert inputs["latent"].dtype == tf.float32
    assert tuple(inputs["latent"].shape) == (None, SMOKE["latent_dim"])
    assert list(outputs) == ["images"]
    np.testing.assert_allclose(outputs["images"].numpy(), expected,
                               atol=1e-5)
    np.testing.assert_allclose(np.array(response["predictions"]), expected,
                               atol=1e-5)
    assert expected.min() >= 0.0
    assert expected.max() <= 1.0


# --- the published generator ----------------------------------------------

@pytest.fixture(scope="module")
def published():
    from zoo import hub

    try:
        hub.get_entry("dcgan", "digits")
    except hub.HubError as error:
        pytest.fail(f"dcgan:digits is not published: {error}")
    return zoo.get_model("dcgan", weights="digits")


@pytest.mark.slow
def test_published_generator_covers_every_digit(published, digits):
    recipe = _recipe()
    extractor = gan_eval.FeatureExtractor(gan_eval.load_classifier(digits))

    samples = recipe.generate_pixels(published, 1000, seed=0)
    _, probabilities = extractor(samples)
    coverage = gan_eval.class_coverage(probabilities)

    assert min(coverage["class_fractions"]) >= 0.03, coverage
    assert coverage["mean_top_probability"] >= 0.85


@pytest.mark.slow
def test_published_generator_metrics_reproduce(published, digits):
    from zoo import hub

    _, entry = hub.get_entry("dcgan", "digits")
    recipe = _recipe()
    recipe.compile(published)
    _, _, test = recipe.datasets(digits)

    measured = recipe.evaluate(published, test, digits)

    assert measured["fd"] <= 0.1 * measured["fd_noise"]
    for key in ("fd", "fd_noise", "inception_score", "min_class_fraction",
                "mean_top_probability", "test_d_loss"):
        assert measured[key] == pytest.approx(entry["metrics"][key],
                                              rel=1e-3, abs=1e-4), key


@pytest.mark.slow
def test_published_saved_model_matches_keras(published, tmp_path):
    import tensorflow as tf

    from zoo import hub

    version_dir = hub.extract_saved_model("dcgan", "digits",
                                          base_dir=str(tmp_path))
    latent = np.random.default_rng(3).standard_normal(
        (16, published.latent_dim)).astype("float32")
    expected = (np.asarray(published.generator(latent, training=False))
                + 1.0) / 2.0

    loaded = tf.saved_model.load(version_dir, tags=["serve"])
    images = loaded.signatures["serving_default"](
        latent=tf.constant(latent))["images"].numpy()

    np.testing.assert_allclose(images, expected, atol=1e-5)
