"""Bayesian neural networks: MC dropout and Bayes by Backprop classifiers.

Both predict with the mean of several stochastic forward passes and serve
that mean beside its predictive entropy, a measure of uncertainty. The
layers are in `zoo.layers.bayesian`.
"""

import numpy as np

from training.recipes import SupervisedRecipe
from zoo.registry import register_model

_INPUTS = {"features": ((None, 64), "float32")}
_OUTPUTS = {
    "probabilities": ((None, 10), "float32"),
    "entropy": ((None,), "float32"),
}
_DEFAULTS = {
    "input_dim": 64,
    "num_classes": 10,
    "hidden_units": [128, 128],
    "dropout": 0.3,
    "num_samples": 20,
    # About 1 / (number of training digits), so the summed losses are the
    # negative evidence lower bound per example.
    "kl_weight": 8e-4,
    "prior_std": 1.0,
    "seed": 0,
}
_SMOKE = {"hidden_units": [8], "num_samples": 2}


def expected_calibration_error(probabilities, labels, num_bins=15):
    """Return the expected calibration error of class probabilities.

    Predictions are grouped into `num_bins` equal-width bins of their top
    probability (confidence); the error is the mean over bins of
    |accuracy - confidence|, weighted by the share of predictions per bin.

    Args:
        probabilities: Array `(examples, classes)`.
        labels: Integer array `(examples,)`.
        num_bins: Number of confidence bins. Defaults to 15.

    Returns:
        A float in [0, 1].

    References:
        Guo, Pleiss, Sun, Weinberger (2017). On calibration of modern
        neural networks. https://arxiv.org/abs/1706.04599
    """
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels).reshape(-1)
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise ValueError(
            "`probabilities` must be (examples, classes) with one row per "
            f"label. Received shapes {probabilities.shape} and "
            f"{labels.shape}"
        )
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            gap = abs(correct[inside].mean() - confidence[inside].mean())
            error += inside.mean() * gap
    return float(error)


def predictive_entropy(probabilities):
    """Return the entropy (nats) of each row of `probabilities`."""
    probabilities = np.clip(np.asarray(probabilities), 1e-12, 1.0)
    return -(probabilities * np.log(probabilities)).sum(axis=-1)


class BayesianRecipe(SupervisedRecipe):
    """Cross-entropy training; the test report adds calibration and the
    predictive entropy on test digits and on uniform noise images."""

    def evaluate(self, model, test, bundle):
        metrics = super().evaluate(model, test, bundle)
        x, y = bundle.test.x, bundle.test.y
        probabilities = np.asarray(model.predict(x, verbose=0))
        noise = np.random.default_rng(0).random(x.shape).astype("float32")
        noise_probabilities = np.asarray(model.predict(noise, verbose=0))
        metrics["test_ece"] = expected_calibration_error(probabilities, y)
        metrics["test_entropy"] = float(
            predictive_entropy(probabilities).mean())
        metrics["noise_entropy"] = float(
            predictive_entropy(noise_probabilities).mean())
        return metrics

    def serving_model(self, model):
        import keras
        from keras import ops

        inputs = keras.Input((model.input_dim,), name="features")
        probabilities = model(inputs, training=False)
        clipped = ops.clip(probabilities, 1e-12, 1.0)
        entropy = -ops.sum(clipped * ops.log(clipped), axis=-1)
        return keras.Model(inputs, [probabilities, entropy],
                           name=f"{model.name}_serving")


def _build(kind, input_dim, num_classes, hidden_units, dropout, num_samples,
           kl_weight, prior_std, seed):
    from zoo.layers.bayesian import BayesianMLP

    model = BayesianMLP(
        input_dim=input_dim, num_classes=num_classes,
        hidden_units=hidden_units, kind=kind, dropout=dropout,
        num_samples=num_samples, kl_weight=kl_weight, prior_std=prior_std,
        seed=seed, name=kind.replace("_", "-"),
    )
    model.build((None, input_dim))
    return model


@register_model(
    "mc-dropout-mlp",
    family="bayesian",
    task="classification",
    inputs=_INPUTS,
    outputs=_OUTPUTS,
    dataset="digits-flat",
    defaults=_DEFAULTS,
    training={"epochs": 60, "batch_size": 32, "learning_rate": 1e-3},
    smoke=_SMOKE,
    recipe="zoo.models.bayesian:BayesianRecipe",
    pretrained=("digits",),
    references=(
        "Gal, Ghahramani (2016). Dropout as a Bayesian approximation: "
        "representing model uncertainty in deep learning. "
        "https://arxiv.org/abs/1506.02142",
    ),
)
def mc_dropout_mlp(input_dim, num_classes, hidden_units, dropout,
                   num_samples, kl_weight, prior_std, seed):
    """MLP with Monte Carlo dropout: dropout stays on at prediction."""
    return _build("mc_dropout", input_dim, num_classes, hidden_units,
                  dropout, num_samples, kl_weight, prior_std, seed)


@register_model(
    "bayes-by-backprop-mlp",
    family="bayesian",
    task="classification",
    inputs=_INPUTS,
    outputs=_OUTPUTS,
    dataset="digits-flat",
    defaults=_DEFAULTS,
    training={"epochs": 100, "batch_size": 32, "learning_rate": 3e-3},
    smoke=_SMOKE,
    recipe="zoo.models.bayesian:BayesianRecipe",
    references=(
        "Blundell, Cornebise, Kavukcuoglu, Wierstra (2015). Weight "
        "uncertainty in neural networks. https://arxiv.org/abs/1505.05424",
    ),
)
def bayes_by_backprop_mlp(input_dim, num_classes, hidden_units, dropout,
                          num_samples, kl_weight, prior_std, seed):
    """MLP with Gaussian weight posteriors trained by Bayes by Backprop."""
    return _build("bayes_by_backprop", input_dim, num_classes, hidden_units,
                  dropout, num_samples, kl_weight, prior_std, seed)
