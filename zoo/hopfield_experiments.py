"""Hopfield experiments: storage capacity and occluded-digit retrieval.

`capacity_curves` stores `N` random +1/-1 patterns of dimension `d` in
the classical and the modern network and measures the fraction retrieved
exactly (sign equal to the stored pattern) for growing `N`;
`plot_capacity` draws it. `occluded_digits_figure` stores the binarized
training digits in both networks and shows what each retrieves from the
top half of a digit. The `zoo experiment` command runs both.
"""

import logging
import os

import numpy as np

from zoo import classical_hopfield as classical

logger = logging.getLogger(__name__)

DEFAULT_COUNTS_PER_DIM = (
    0.03125, 0.0625, 0.09375, 0.125, 0.15625, 0.1875, 0.25, 0.375, 0.5,
    1, 2, 4, 16, 64, 256, 1024,
)


def capacity_curves(dim=64, counts=None, beta=1.0, flip_rate=0.1,
                    max_queries=256, seed=0):
    """Measure exact retrieval against the number of stored patterns.

    For each count `N`, `N` random +1/-1 patterns are stored and at most
    `max_queries` of them are queried three ways: unchanged, with a
    fraction `flip_rate` of signs flipped, and with the last half of the
    entries set to 0. The classical network runs asynchronous sign updates
    to a fixed point; the modern one runs one update with `beta`.

    Args:
        dim: Pattern dimension `d`. Defaults to 64.
        counts: Numbers of stored patterns. Defaults to
            `DEFAULT_COUNTS_PER_DIM` times `dim`, from `d / 32` to `1024 d`.
        beta: Inverse temperature of the modern update. Defaults to 1.
        flip_rate: Fraction of flipped signs of the noisy queries.
            Defaults to 0.1.
        max_queries: Patterns queried per count. Defaults to 256.
        seed: Seed of the patterns and flips. Defaults to 0.

    Returns:
        A dict with `dim`, `counts` and, per curve name such as
        `"classical, clean"` or `"modern, half occluded"`, the list of
        exact fractions.
    """
    if dim < 2:
        raise ValueError(f"`dim` must be >= 2. Received: dim={dim!r}")
    if counts is None:
        counts = sorted({max(1, int(round(f * dim)))
                         for f in DEFAULT_COUNTS_PER_DIM})
    rng = np.random.default_rng(seed)
    curves = {}
    for count in counts:
        # Small memories are stored several times so that each point
        # averages about `max_queries` queries.
        trials = -(-max_queries // count)
        hits = {}
        for _ in range(trials):
            for name, hit in _retrieval_trial(count, dim, beta, flip_rate,
                                              max_queries, rng).items():
                hits.setdefault(name, []).append(hit)
        for name, values in hits.items():
            curves.setdefault(name, []).append(
                float(np.concatenate(values).mean()))
        logger.info("N=%d: %s", count,
                    {k: round(v[-1], 3) for k, v in curves.items()})
    return {"dim": dim, "counts": list(counts), "beta": beta,
            "flip_rate": flip_rate, **curves}


def _retrieval_trial(count, dim, beta, flip_rate, max_queries, rng):
    # Returns, per curve name, a boolean per query: retrieved exactly.
    patterns = classical.random_patterns(count, dim,
                                         seed=int(rng.integers(2**31)))
    probed = patterns[:max_queries]
    signs = np.where(rng.random(probed.shape) < flip_rate, -1.0, 1.0)
    half = probed.copy()
    half[:, dim - dim // 2:] = 0.0
    queries_by_kind = {"clean": probed, "noisy": probed * signs,
                       "half occluded": half}
    network = classical.ClassicalHopfield(patterns)
    hits = {}
    for kind, queries in queries_by_kind.items():
        recalled = network.retrieve(queries, seed=int(rng.integers(2**31)))
        hits[f"classical, {kind}"] = classical.exactly_retrieved(recalled,
                                                                 probed)
        retrieved = classical.modern_retrieve(patterns, queries, beta)
        hits[f"modern, {kind}"] = classical.exactly_retrieved(retrieved,
                                                              probed)
    return hits


def _save_figure(figure, path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.tmp.png"
    figure.savefig(temporary, dpi=100)
    os.replace(temporary, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_capacity(curves, path):
    """Plot `capacity_curves` output into a PNG at `path`.

    The x axis is `N / d` on a log scale, with dashed lines at the
    classical capacity `0.138 d` and at `N = d`.
    """
    plt = _pyplot()
    dim = curves["dim"]
    ratios = np.asarray(curves["counts"], dtype="float64") / dim
    figure, axis = plt.subplots(figsize=(7, 4.2))
    styles = {"classical": "--", "modern": "-"}
    for name, values in curves.items():
        if not isinstance(values, list) or name == "counts":
            continue
        network = name.split(",")[0]
        axis.plot(ratios, values, styles[network], marker="o",
                  markersize=3, label=name)
    axis.axvline(classical.CLASSICAL_CAPACITY, color="gray", linestyle=":",
                 label=f"{classical.CLASSICAL_CAPACITY} d")
    axis.axvline(1.0, color="black", linestyle=":", label="N = d")
    axis.set_xscale("log", base=2)
    axis.set_xlabel(f"stored patterns N / d (d = {dim})")
    axis.set_ylabel("fraction retrieved exactly")
    axis.set_title(f"Random ±1 patterns: classical (sign updates to a "
                   f"fixed point)\nvs modern (one update, beta = "
                   f"{curves['beta']:g})", fontsize=10)
    axis.set_ylim(-0.03, 1.03)
    axis.legend(fontsize=7, loc="center right")
    figure.tight_layout()
    _save_figure(figure, path)
    plt.close(figure)


def occluded_digits(count=8, seed=0, beta=4.0, steps=3):
    """Retrieve binarized training digits from their top halves.

    Every binarized training digit of `digits-flat` is stored in the
    classical network and in a `hopfield-memory` model; `count` of them,
    picked with `seed`, are queried with their bottom half set to 0.

    Args:
        count: Number of digits shown. Defaults to 8.
        seed: Seed of the choice of digits. Defaults to 0.
        beta: Inverse temperature of the modern memory. Defaults to 4.
        steps: Modern update steps. Defaults to 3.

    Returns:
        A dict of `(count, 64)` arrays: `stored`, `queries`, `classical`
        and `modern` (the sign of each retrieval), and the exact fractions
        of both networks over all stored digits in `classical_exact` and
        `modern_exact`.
    """
    import zoo
    from zoo import datasets
    from zoo.models import hopfield

    bundle = datasets.load("digits-flat")
    stored = hopfield.binarize(bundle.train.x)
    queries = hopfield.occlude(stored)
    model = zoo.get_model("hopfield-memory", num_patterns=len(stored),
                          beta=beta, max_update_steps=steps)
    hopfield.store_patterns(model, stored)
    modern = np.sign(model.predict(queries, verbose=0))
    network = classical.ClassicalHopfield(stored)
    recalled = network.retrieve(queries, seed=seed)
    chosen = np.random.default_rng(seed).choice(len(stored), count,
                                                replace=False)
    return {
        "stored": stored[chosen], "queries": queries[chosen],
        "classical": recalled[chosen], "modern": modern[chosen],
        "classical_exact": float(
            classical.exactly_retrieved(recalled, stored).mean()),
        "modern_exact": float(
            classical.exactly_retrieved(modern, stored).mean()),
    }


def plot_occluded_digits(result, path):
    """Draw `occluded_digits` output as a grid of 8x8 images in a PNG."""
    plt = _pyplot()
    rows = (("stored", "stored digit"), ("queries", "query (top half)"),
            ("classical", "classical"), ("modern", "modern"))
    count = len(result["stored"])
    figure, axes = plt.subplots(len(rows), count,
                                figsize=(1.1 * count + 1.2, 4.8),
                                squeeze=False)
    for row, (key, title) in enumerate(rows):
        for column in range(count):
            axis = axes[row, column]
            # -1 black, 0 (unknown) gray, +1 white.
            axis.imshow(result[key][column].reshape(8, 8), cmap="gray",
                        vmin=-1, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[row, 0].set_ylabel(title, fontsize=8)
    figure.suptitle(
        "Half-occluded digits: exact retrieval over all stored digits, "
        f"classical {result['classical_exact']:.1%}, modern "
        f"{result['modern_exact']:.1%}", fontsize=9)
    figure.tight_layout()
    _save_figure(figure, path)
    plt.close(figure)


def run_experiment(name, out, seed=0):
    """Run experiment `name` and write its PNG to `out`.

    Args:
        name: `"hopfield-capacity"` or `"hopfield-occluded-digits"`.
        out: PNG path.
        seed: Seed. Defaults to 0.

    Returns:
        A dict of the measured numbers.
    """
    if name == "hopfield-capacity":
        curves = capacity_curves(seed=seed)
        plot_capacity(curves, out)
        return curves
    if name == "hopfield-occluded-digits":
        result = occluded_digits(seed=seed)
        plot_occluded_digits(result, out)
        return {"classical_exact": result["classical_exact"],
                "modern_exact": result["modern_exact"]}
    raise ValueError(
        f"Unknown experiment {name!r}. Experiments: {', '.join(EXPERIMENTS)}"
    )


EXPERIMENTS = ("hopfield-capacity", "hopfield-occluded-digits")
