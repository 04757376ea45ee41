"""Double descent in the width of a fully trained dense network.

Belkin, Hsu, Ma and Mandal (2019) also sweep the width of two-layer
networks trained end to end with the squared loss
(https://arxiv.org/abs/1812.11118). This module does the same on a digits
subset, small enough for a CPU:

- Data: `train_size` training digits (default 100) from the digits'
  training split, with one-hot targets. The validation and test splits
  together (540 digits) are the test set. Pixels are centred by the mean
  training image, as in `zoo.experiments.double_descent`.
- Model: `Dense(h, relu) -> Dense(10)`, with `75 h + 10` parameters for 64
  pixels, trained from scratch for every width by full-batch Adam on the
  mean squared error, for a fixed number of steps.
- Threshold: the network can interpolate once its parameters reach the
  number of fitted values, `10 n` (1000 for 100 digits), so near
  `h = (10 n - 10) / 75`.

Unlike the paper, weights are not reused from smaller networks, and each
width is trained from one seed per repeat, so the curve is noisier than
the random-features sweep. For the default seed the test loss peaks within
about 20 percent of the threshold. Measured on 2 CPU cores: the peak is at
h = 14 (1060 parameters, test loss 0.122), against 0.062 for the best
narrower network and 0.021 at h = 1000.
"""

import dataclasses
import logging

import numpy as np

from zoo.experiments.double_descent import save_figure
from zoo.experiments.double_descent import write_numbers

logger = logging.getLogger(__name__)

DEFAULT_TRAIN_SIZE = 100
DEFAULT_WIDTHS = (2, 4, 6, 8, 10, 12, 13, 14, 16, 20, 30, 60, 200, 1000)


@dataclasses.dataclass
class TrainedSweepResult:
    """Errors of the trained-width sweep, one entry per width.

    Attributes:
        train_size: Number of training digits `n`.
        widths: Hidden widths `h`.
        parameters: Parameters of each network.
        train_squared: Final training mean squared error.
        test_squared: Test mean squared error (per output).
        test_zero_one: Test classification error.
        steps: Full-batch Adam steps per width.
        repeats: Seeds averaged per width.
    """

    train_size: int
    widths: list
    parameters: list
    train_squared: list
    test_squared: list
    test_zero_one: list
    steps: int
    repeats: int

    @property
    def threshold(self):
        """Parameters needed to fit the `10 n` one-hot targets exactly."""
        return 10 * self.train_size

    def summary(self):
        """Return where the test loss peaks and how it compares."""
        parameters = np.asarray(self.parameters)
        squared = np.asarray(self.test_squared)
        under = parameters < self.threshold
        return {
            "train_size": self.train_size,
            "threshold_parameters": self.threshold,
            "peak_parameters": int(parameters[np.argmax(squared)]),
            "peak_test_squared": float(squared.max()),
            "best_under_test_squared": float(squared[under].min()),
            "largest_parameters": int(parameters[-1]),
            "largest_test_squared": float(squared[-1]),
        }


def _train_width(width, x_train, y_train, x_test, steps, learning_rate,
                 seed):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((x_train.shape[1],)),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(y_train.shape[1]),
    ])
    optimizer = keras.optimizers.Adam(learning_rate)
    x = tf.constant(x_train)
    y = tf.constant(y_train)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - y))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients,
                                      model.trainable_variables))
        return loss

    for _ in range(steps):
        loss = step()
    return float(loss), np.asarray(model(x_test)), model.count_params()


def run_trained_sweep(train_size=DEFAULT_TRAIN_SIZE, widths=DEFAULT_WIDTHS,
                      steps=4000, learning_rate=3e-3, repeats=1, seed=0):
    """Train a network per width and measure its test error.

    Args:
        train_size: Training digits. Defaults to 100.
        widths: Hidden widths to train. Defaults to `DEFAULT_WIDTHS`.
        steps: Full-batch Adam steps per width. Defaults to 4000.
        learning_rate: Adam learning rate. Defaults to 3e-3.
        repeats: Seeds averaged per width. Defaults to 1.
        seed: First seed. Defaults to 0.

    Returns:
        A `TrainedSweepResult`.
    """
    from zoo.experiments.double_descent import load_digits_subset

    if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(
            "`widths` must be positive integers. Received: "
            f"widths={widths!r}"
        )
    if steps < 1 or repeats < 1:
        raise ValueError(
            f"`steps` and `repeats` must be >= 1. Received: steps={steps}, "
            f"repeats={repeats}"
        )
    x_train, y_train, x_test, y_test = load_digits_subset(train_size, seed)
    targets = np.eye(10, dtype="float32")[y_train]
    test_targets = np.eye(10, dtype="float32")[y_test]
    columns = {"train_squared": [], "test_squared": [], "test_zero_one": [],
               "parameters": []}
    for width in widths:
        runs = [_train_width(width, x_train.astype("float32"), targets,
                             x_test.astype("float32"), steps, learning_rate,
                             seed + repeat) for repeat in range(repeats)]
        columns["train_squared"].append(
            float(np.mean([r[0] for r in runs])))
        columns["test_squared"].append(float(np.mean(
            [np.mean((r[1] - test_targets) ** 2) for r in runs])))
        columns["test_zero_one"].append(float(np.mean(
            [np.mean(r[1].argmax(axis=1) != y_test) for r in runs])))
        columns["parameters"].append(int(runs[0][2]))
        logger.info("width %d (%d parameters): test squared %.4f",
                    width, runs[0][2], columns["test_squared"][-1])
    return TrainedSweepResult(train_size=train_size,
                              widths=[int(w) for w in widths], steps=steps,
                              repeats=repeats, **columns)


def plot_trained_sweep(result, path):
    """Write a PNG of test loss and error against parameters, with the
    interpolation threshold marked, through a temporary file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    top.plot(result.parameters, result.test_squared, "o-", markersize=3,
             label="test squared loss")
    top.plot(result.parameters, result.train_squared, "o--", markersize=3,
             label="training squared loss")
    bottom.plot(result.parameters, np.asarray(result.test_zero_one) * 100,
                "o-", markersize=3, label="test zero-one error")
    for axis in (top, bottom):
        axis.axvline(result.threshold, color="black", linestyle="--",
                     linewidth=1, label="interpolation threshold, "
                     f"{result.threshold} parameters = 10 n")
        axis.set_xscale("log")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    top.set_yscale("log")
    top.set_ylabel("mean squared error")
    bottom.set_ylabel("test zero-one error (%)")
    bottom.set_xlabel("parameters of Dense(h, relu) -> Dense(10)")
    top.set_title(f"Double descent of fully trained networks on "
                  f"{result.train_size} digits")
    return save_figure(figure, path)


def run(path, seed=0, **options):
    """Run the sweep, write the PNG at `path` and its numbers as JSON."""
    result = run_trained_sweep(seed=seed, **options)
    plot_trained_sweep(result, path)
    write_numbers(path, {**dataclasses.asdict(result),
                         "summary": result.summary()})
    return result
