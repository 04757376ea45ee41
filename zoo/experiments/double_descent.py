"""Double descent of the test error with minimum-norm least squares.

Belkin, Hsu, Ma and Mandal (2019) show that the test risk of models fitted
to interpolation first follows the classical U-shaped curve. It peaks at
the interpolation threshold, where the model has just enough parameters to
fit the training data exactly, and falls again beyond it. This module
reproduces their random features experiment on a subset of the digits
(Reconciling modern machine learning practice and the bias-variance
trade-off, https://arxiv.org/abs/1812.11118).

Setup of `run_sweep`:

- Data: `train_size` training digits (default 200), drawn without
  replacement from the digits' training split; the test set is the
  validation and test splits together (540 digits). Pixels in [0, 1] are
  centred by the mean training image.
- Model: a Keras network `pixels -> Dense(N, frozen random weights) ->
  Dense(10, no bias)`. Its hidden layer is either random Fourier features
  `cos(x W + b)` with `W ~ N(0, 1 / bandwidth^2)` and `b ~ U(0, 2 pi)`
  (kind `"fourier"`, the paper's RFF model) or random ReLU units
  `relu(x W + b)` with He-normal `W` (kind `"relu"`, a dense network of
  width N whose hidden layer stays at its initialization).
- Fit: only the readout is fitted, to one-hot targets, by the
  minimum-norm least-squares solution (`numpy.linalg.lstsq`). Below
  `N = train_size` it is the least-squares fit; above it, the
  interpolating solution of minimum norm.
- Model size: `N`. Each of the 10 outputs has `N` parameters and
  `train_size` equations, so the interpolation threshold is
  `N = train_size` (10 N parameters against 10 n targets).
- Errors are averaged over `repeats` draws of the random hidden layer.
"""

import dataclasses
import json
import logging
import os

import numpy as np

logger = logging.getLogger(__name__)

KINDS = ("fourier", "relu")
DEFAULT_TRAIN_SIZE = 200


def default_sizes(train_size=DEFAULT_TRAIN_SIZE, max_size=None):
    """Return a sweep of model sizes that is dense around `train_size`.

    Args:
        train_size: Number of training samples `n`. Defaults to 200.
        max_size: Largest size. Defaults to `20 * train_size`.

    Returns:
        Sorted unique integer sizes from `n / 20` to `max_size`, with `n`
        itself and sizes within 10 percent of it included.
    """
    n = train_size
    max_size = max_size or 20 * n
    fractions = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9,
                 0.95, 1.0, 1.05, 1.1, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0]
    sizes = {max(1, int(round(f * n))) for f in fractions}
    return sorted(s for s in sizes if s <= max_size)


@dataclasses.dataclass
class SweepResult:
    """Errors of one sweep, one entry per model size.

    Attributes:
        kind: Hidden layer kind, one of `KINDS`.
        train_size: Number of training samples `n`.
        test_size: Number of test samples.
        sizes: Model sizes `N` (hidden units).
        test_zero_one: Mean test classification error per size.
        test_squared: Mean test squared loss per size (sum over the 10
            outputs, averaged over samples).
        train_squared: Mean training squared loss per size.
        readout_norm: Mean Frobenius norm of the fitted readout per size.
        repeats: Draws of the hidden layer averaged per size.
        bandwidth: Gaussian kernel bandwidth of the Fourier features, or
            `None` for ReLU features.
    """

    kind: str
    train_size: int
    test_size: int
    sizes: list
    test_zero_one: list
    test_squared: list
    train_squared: list
    readout_norm: list
    repeats: int
    bandwidth: float | None

    @property
    def threshold(self):
        """Interpolation threshold: the model size equal to `train_size`."""
        return self.train_size

    def summary(self):
        """Return the numbers the double descent claim rests on.

        Returns:
            A dict with the size of the peak of the test squared loss and
            of the test zero-one error, the best zero-one error below the
            threshold and at any size, and the zero-one error at the
            largest size.
        """
        sizes = np.asarray(self.sizes)
        zero_one = np.asarray(self.test_zero_one)
        squared = np.asarray(self.test_squared)
        under = sizes < self.train_size
        return {
            "kind": self.kind,
            "train_size": self.train_size,
            "peak_size_squared": int(sizes[np.argmax(squared)]),
            "peak_size_zero_one": int(sizes[np.argmax(zero_one)]),
            "peak_zero_one": float(zero_one.max()),
            "best_under_zero_one": float(zero_one[under].min()),
            "best_under_size": int(sizes[under][np.argmin(zero_one[under])]),
            "largest_size": int(sizes[-1]),
            "largest_zero_one": float(zero_one[-1]),
            "best_zero_one": float(zero_one.min()),
        }

    def to_dict(self):
        return {**dataclasses.asdict(self), "summary": self.summary()}


def load_digits_subset(train_size=DEFAULT_TRAIN_SIZE, seed=0):
    """Return `(x_train, y_train, x_test, y_test)` of the sweep.

    Args:
        train_size: Training samples drawn from the digits' training split.
            Defaults to 200.
        seed: Seed of the draw. Defaults to 0.
    """
    from zoo import datasets

    bundle = datasets.load("digits-flat")
    if isinstance(train_size, bool) or not isinstance(train_size, int) or \
            not 1 <= train_size <= len(bundle.train):
        raise ValueError(
            f"`train_size` must be an integer in [1, {len(bundle.train)}]. "
            f"Received: train_size={train_size!r}"
        )
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(bundle.train), size=train_size, replace=False)
    x_test = np.concatenate([bundle.validation.x, bundle.test.x])
    y_test = np.concatenate([bundle.validation.y, bundle.test.y])
    return (bundle.train.x[chosen], bundle.train.y[chosen], x_test, y_test)


def median_distance(x):
    """Return the median pairwise Euclidean distance of the rows of `x`."""
    squared = np.sum(x * x, axis=1)
    distances = squared[:, None] - 2.0 * x @ x.T + squared[None, :]
    upper = distances[np.triu_indices(len(x), k=1)]
    return float(np.sqrt(np.median(np.maximum(upper, 0.0))))


def build_network(kind, input_dim, width, num_outputs, bandwidth=None,
                  seed=None):
    """Build `Input -> Dense(width, random, frozen) -> Dense(outputs)`.

    Args:
        kind: `"fourier"` (cosine random Fourier features) or `"relu"`.
        input_dim: Input length.
        width: Hidden units `N`.
        num_outputs: Readout units.
        bandwidth: Gaussian kernel bandwidth of the Fourier features.
            Required for `"fourier"`.
        seed: Seed of the hidden weights. Defaults to `None`.

    Returns:
        An uncompiled `keras.Model` whose hidden layer is named `hidden`
        (not trainable) and readout `readout` (no bias).
    """
    import keras

    if kind not in KINDS:
        raise ValueError(
            f"`kind` must be one of {', '.join(KINDS)}. Received: "
            f"kind={kind!r}"
        )
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(
            f"`width` must be a positive integer. Received: width={width!r}"
        )
    if kind == "fourier":
        if bandwidth is None or not bandwidth > 0:
            raise ValueError(
                "Fourier features need a positive `bandwidth`. Received: "
                f"bandwidth={bandwidth!r}"
            )
        hidden = keras.layers.Dense(
            width, activation=keras.ops.cos, name="hidden",
            kernel_initializer=keras.initializers.RandomNormal(
                stddev=1.0 / bandwidth, seed=seed),
            bias_initializer=keras.initializers.RandomUniform(
                0.0, 2.0 * np.pi, seed=seed),
        )
    else:
        hidden = keras.layers.Dense(
            width, activation="relu", name="hidden",
            kernel_initializer=keras.initializers.HeNormal(seed=seed),
            bias_initializer=keras.initializers.RandomNormal(
                stddev=0.1, seed=seed),
        )
    hidden.trainable = False
    inputs = keras.Input((input_dim,), name="pixels")
    features = hidden(inputs)
    outputs = keras.layers.Dense(num_outputs, use_bias=False,
                                 name="readout")(features)
    return keras.Model(inputs, outputs, name=f"random_{kind}_{width}")


def fit_minimum_norm(model, x_train, targets):
    """Set the readout of `model` to the minimum-norm least-squares fit.

    Args:
        model: A network from `build_network`.
        x_train: Training inputs `(n, input_dim)`.
        targets: Training targets `(n, num_outputs)`.

    Returns:
        The fitted readout `(width, num_outputs)`.
    """
    from threadpoolctl import threadpool_limits

    hidden = model.get_layer("hidden")
    features = np.asarray(hidden(x_train), dtype="float64")
    # lstsq returns the minimum-norm solution when the system is
    # under-determined (width > n) or rank deficient.
    # One BLAS thread: beside TensorFlow's threads, a multithreaded
    # OpenBLAS solve of this size is about 15 times slower on 2 cores.
    with threadpool_limits(limits=1):
        readout, *_ = np.linalg.lstsq(features,
                                      targets.astype("float64"), rcond=None)
    model.get_layer("readout").set_weights([readout.astype("float32")])
    return readout


def run_sweep(kind="fourier", train_size=DEFAULT_TRAIN_SIZE, sizes=None,
              repeats=3, seed=0, bandwidth=None):
    """Fit the random-features network at each size and measure errors.

    Args:
        kind: `"fourier"` or `"relu"`. Defaults to `"fourier"`.
        train_size: Training samples. Defaults to 200.
        sizes: Hidden widths to sweep. Defaults to
            `default_sizes(train_size)`.
        repeats: Draws of the hidden layer per size. Defaults to 3.
        seed: Seed of the data subset and the hidden layers. Defaults to 0.
        bandwidth: Fourier feature bandwidth. Defaults to the median
            pairwise distance of the training inputs.

    Returns:
        A `SweepResult`.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or \
            repeats < 1:
        raise ValueError(
            f"`repeats` must be a positive integer. Received: "
            f"repeats={repeats!r}"
        )
    x_train, y_train, x_test, y_test = load_digits_subset(train_size, seed)
    # Centred pixels: with raw pixels, all non-negative, about 4 percent of
    # random ReLU units never fire on 200 digits, which lowers the rank of
    # the features and moves the ReLU peak above N = n.
    mean = x_train.mean(axis=0)
    x_train, x_test = x_train - mean, x_test - mean
    sizes = list(sizes or default_sizes(train_size))
    if kind == "fourier" and bandwidth is None:
        bandwidth = median_distance(x_train)
    num_classes = 10
    targets = np.eye(num_classes)[y_train]
    test_targets = np.eye(num_classes)[y_test]

    columns = {"test_zero_one": [], "test_squared": [], "train_squared": [],
               "readout_norm": []}
    for size in sizes:
        per_draw = {key: [] for key in columns}
        for draw in range(repeats):
            model = build_network(kind, x_train.shape[1], int(size),
                                  num_classes, bandwidth=bandwidth,
                                  seed=seed * 1000 + draw)
            readout = fit_minimum_norm(model, x_train, targets)
            test_out = np.asarray(model(x_test), dtype="float64")
            train_out = np.asarray(model(x_train), dtype="float64")
            per_draw["test_zero_one"].append(
                float(np.mean(test_out.argmax(axis=1) != y_test)))
            per_draw["test_squared"].append(float(np.mean(
                np.sum((test_out - test_targets) ** 2, axis=1))))
            per_draw["train_squared"].append(float(np.mean(
                np.sum((train_out - targets) ** 2, axis=1))))
            per_draw["readout_norm"].append(float(np.linalg.norm(readout)))
        for key, values in per_draw.items():
            columns[key].append(float(np.mean(values)))
        logger.info("%s N=%d: test error %.3f, test squared loss %.3f",
                    kind, size, columns["test_zero_one"][-1],
                    columns["test_squared"][-1])
    return SweepResult(
        kind=kind, train_size=train_size, test_size=len(x_test),
        sizes=[int(s) for s in sizes], repeats=repeats,
        bandwidth=bandwidth, **columns)


def plot_sweeps(results, path):
    """Write a PNG of test error against model size for each sweep.

    The top panel shows the zero-one test error, the bottom one the test
    squared loss (log scale); a dashed line marks the interpolation
    threshold `N = n`.

    Args:
        results: `SweepResult`s sharing one `train_size`.
        path: PNG file to write (through a temporary file and a rename).

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("`results` must contain at least one SweepResult.")
    train_size = results[0].train_size
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    labels = {"fourier": "random Fourier features",
              "relu": "dense ReLU network, random frozen hidden layer"}
    for result in results:
        label = labels[result.kind]
        top.plot(result.sizes, np.asarray(result.test_zero_one) * 100, "o-",
                 markersize=3, label=label)
        bottom.plot(result.sizes, result.test_squared, "o-", markersize=3,
                    label=label)
    for axis in (top, bottom):
        axis.axvline(train_size, color="black", linestyle="--",
                     linewidth=1, label=f"interpolation threshold N = n = "
                     f"{train_size}")
        axis.set_xscale("log")
        axis.grid(alpha=0.3)
    top.set_ylabel("test zero-one error (%)")
    bottom.set_ylabel("test squared loss")
    bottom.set_yscale("log")
    bottom.set_xlabel("hidden units N (parameters per output)")
    top.legend(fontsize=8)
    top.set_title(f"Double descent, minimum-norm fit on {train_size} digits "
                  f"({results[0].test_size} test)")
    return save_figure(figure, path)


def save_figure(figure, path):
    """Write a matplotlib figure to PNG `path` through a rename, close it,
    and return `path`."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    temporary = f"{path}.tmp.png"
    figure.savefig(temporary, dpi=90)
    plt.close(figure)
    os.replace(temporary, path)
    return path


def write_numbers(path, payload):
    """Write `payload` as JSON beside the PNG `path` (same name, `.json`)
    through a rename, and return the JSON path."""
    numbers = os.path.splitext(path)[0] + ".json"
    temporary = f"{numbers}.tmp"
    with open(temporary, "w") as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
    os.replace(temporary, numbers)
    return numbers


def run(path, kinds=KINDS, train_size=DEFAULT_TRAIN_SIZE, repeats=3,
        seed=0, max_size=None):
    """Run the sweeps, write the PNG at `path` and a JSON beside it.

    Args:
        path: PNG file. The numbers go to the same name with `.json`.
        kinds: Hidden layer kinds to sweep. Defaults to both.
        train_size: Training samples. Defaults to 200.
        repeats: Draws per size. Defaults to 3.
        seed: Seed. Defaults to 0.
        max_size: Largest width. Defaults to `20 * train_size`.

    Returns:
        The list of `SweepResult`s.
    """
    sizes = default_sizes(train_size, max_size)
    results = [run_sweep(kind, train_size, sizes, repeats=repeats,
                         seed=seed) for kind in kinds]
    plot_sweeps(results, path)
    write_numbers(path, [r.to_dict() for r in results])
    return results
