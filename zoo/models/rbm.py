"""Restricted Boltzmann machines: registry record, recipe and feature probe.

The Keras model lives in `zoo.layers.rbm`. The recipe trains it by
contrastive divergence on the digits, enlarged 5 times by 1-pixel shifts
as in scikit-learn's BernoulliRBM digits example. Its evaluation fits a
logistic regression on the RBM's hidden probabilities and another on the
raw pixels, so every run reports both accuracies.
"""

import logging

import numpy as np

from training.recipes import Recipe
from zoo.registry import register_model

logger = logging.getLogger(__name__)

_REFERENCES = (
    "Hinton (2002). Training products of experts by minimizing contrastive "
    "divergence. https://doi.org/10.1162/089976602760128018",
    "Tieleman (2008). Training restricted Boltzmann machines using "
    "approximations to the likelihood gradient. "
    "https://doi.org/10.1145/1390156.1390290",
    "Hinton (2010). A practical guide to training restricted Boltzmann "
    "machines. https://www.cs.toronto.edu/~hinton/absps/guideTR.pdf",
)

DEFAULT_PROBE_C = 100.0


def nudge_images(x, y, image_shape=(8, 8)):
    """Enlarge a flat image set 5 times by 1-pixel shifts.

    Each image is kept and shifted by one pixel up, down, left and right;
    the pixels that enter at the border are 0.

    Args:
        x: Flat images `(count, height * width)`.
        y: Labels `(count,)`.
        image_shape: `(height, width)` of one image. Defaults to `(8, 8)`.

    Returns:
        `(x, y)` with `5 * count` rows: the originals first, then each
        shift in turn.
    """
    height, width = image_shape
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != height * width:
        raise ValueError(
            f"`x` must have shape (count, {height * width}) for images of "
            f"shape {image_shape}. Received: x.shape={x.shape}"
        )
    images = x.reshape(-1, height, width)
    shifted = [images]
    for axis, step in ((1, 1), (1, -1), (2, 1), (2, -1)):
        moved = np.zeros_like(images)
        source = [slice(None)] * 3
        target = [slice(None)] * 3
        if step > 0:
            source[axis], target[axis] = slice(None, -step), slice(step, None)
        else:
            source[axis], target[axis] = slice(-step, None), slice(None, step)
        moved[tuple(target)] = images[tuple(source)]
        shifted.append(moved)
    x_out = np.concatenate(shifted).reshape(-1, height * width)
    y_out = np.concatenate([np.asarray(y)] * len(shifted))
    return x_out, y_out


def logistic_probe(features_train, y_train, features_test, y_test,
                   c=DEFAULT_PROBE_C, max_iter=1000):
    """Fit a logistic regression on features and return its test accuracy.

    Args:
        features_train: Training features `(count, dim)`.
        y_train: Training labels.
        features_test: Test features.
        y_test: Test labels.
        c: Inverse L2 strength `C` of scikit-learn's `LogisticRegression`.
            Defaults to 100.
        max_iter: L-BFGS iterations. Defaults to 1000.

    Returns:
        Test accuracy in [0, 1].
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    classifier = LogisticRegression(C=c, max_iter=max_iter)
    # One BLAS thread: beside TensorFlow's own threads, a multithreaded
    # OpenBLAS fit of this size spends most of its time waiting (100 times
    # slower on a busy 2-core machine).
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # An unconverged fit still gives a usable probe, and its accuracy
        # measures how usable.
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(features_train, y_train)
    return float(classifier.score(features_test, y_test))


def compare_features(model, bundle, nudge=True, c=DEFAULT_PROBE_C):
    """Measure logistic regression on RBM features against raw pixels.

    Both classifiers train on the training split and are scored on the test
    split, each enlarged by `nudge_images` when `nudge` is set, with the
    same `C`.

    Args:
        model: A trained `RestrictedBoltzmannMachine`.
        bundle: The `DataBundle` (flat images in [0, 1]).
        nudge: Enlarge both splits by 1-pixel shifts. Defaults to `True`.
        c: Inverse L2 strength of both classifiers. Defaults to 100.

    Returns:
        `{"rbm_logistic_accuracy": float, "raw_logistic_accuracy": float}`.
    """
    x_train, y_train = bundle.train.x, bundle.train.y
    x_test, y_test = bundle.test.x, bundle.test.y
    if nudge:
        x_train, y_train = nudge_images(x_train, y_train)
        x_test, y_test = nudge_images(x_test, y_test)
    features_train = np.asarray(model.predict(x_train, verbose=0,
                                              batch_size=1024))
    features_test = np.asarray(model.predict(x_test, verbose=0,
                                             batch_size=1024))
    return {
        "rbm_logistic_accuracy": logistic_probe(
            features_train, y_train, features_test, y_test, c=c),
        "raw_logistic_accuracy": logistic_probe(
            x_train, y_train, x_test, y_test, c=c),
    }


class RBMRecipe(Recipe):
    """Contrastive divergence with SGD, and the logistic regression probe.

    Training settings read besides the common ones: `nudge` (enlarge the
    training split by 1-pixel shifts, default `True`) and `probe_c`
    (the probe's `C`, default 100).
    """

    monitor = "val_reconstruction_error"
    monitor_mode = "min"

    def compile(self, model):
        import keras

        model.compile(optimizer=keras.optimizers.SGD(
            self.settings["learning_rate"]))

    def datasets(self, bundle, augment=None):
        from zoo import datasets

        train_split = bundle.train
        if self.settings.get("nudge", True):
            x, y = nudge_images(bundle.train.x, bundle.train.y)
            train_split = datasets.Split(x, y)
        batch_size = self.settings["batch_size"]
        train = datasets.as_dataset(train_split, batch_size, shuffle=True,
                                    seed=self.settings["seed"],
                                    augment=augment)
        validation = datasets.as_dataset(bundle.validation, batch_size)
        test = datasets.as_dataset(bundle.test, batch_size)
        return train, validation, test

    def evaluate(self, model, test, bundle):
        metrics = super().evaluate(model, test, bundle)
        probe = compare_features(
            model, bundle, nudge=self.settings.get("nudge", True),
            c=self.settings.get("probe_c", DEFAULT_PROBE_C))
        metrics.update({f"test_{k}": v for k, v in probe.items()})
        return metrics

    def serving_model(self, model):
        """Wrap the RBM as a functional model `pixels -> features`."""
        import keras

        inputs = keras.Input((model.num_visible,), name="pixels")
        outputs = keras.layers.Identity(name="features")(model(inputs))
        return keras.Model(inputs, outputs, name=f"{model.name}_serving")


@register_model(
    "rbm",
    family="rbm",
    task="representation-learning",
    inputs={"pixels": ((None, 64), "float32")},
    outputs={"features": ((None, 100), "float32")},
    dataset="digits-flat",
    defaults={
        "num_visible": 64,
        "num_hidden": 100,
        "cd_steps": 1,
        "persistent": True,
        "num_chains": 10,
        "weight_stddev": 0.01,
    },
    training={"epochs": 10, "batch_size": 10, "learning_rate": 0.06,
              "patience": 10, "nudge": True, "probe_c": DEFAULT_PROBE_C},
    smoke={"num_hidden": 8},
    references=_REFERENCES,
    pretrained=("digits",),
    recipe="zoo.models.rbm:RBMRecipe",
)
def rbm(num_visible, num_hidden, cd_steps, persistent, num_chains,
        weight_stddev):
    """Bernoulli RBM trained by (persistent) contrastive divergence.

    Args:
        num_visible: Number of visible units (pixels).
        num_hidden: Number of hidden units (features).
        cd_steps: Gibbs steps of the negative phase.
        persistent: Use persistent CD instead of CD-k.
        num_chains: Number of persistent chains.
        weight_stddev: Standard deviation of the initial weights.
    """
    from zoo.layers.rbm import RestrictedBoltzmannMachine

    return RestrictedBoltzmannMachine(
        num_visible, num_hidden, cd_steps=cd_steps, persistent=persistent,
        num_chains=num_chains, weight_stddev=weight_stddev, name="rbm")
