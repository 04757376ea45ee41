"""Permutation-invariant set models on sets of handwritten digits.

Each example is a set of `SET_SIZE` digit images (64 pixels each) drawn
from one split of scikit-learn's digits. The target is a function of their
labels: the sum, the range (max - min) or the number of distinct labels.
Train, validation and test sets draw from the matching digit splits, so no
test image is ever seen in training.
"""

import numpy as np

from training.recipes import SupervisedRecipe
from zoo import datasets
from zoo.registry import register_model

SET_SIZE = 5
SET_COUNTS = {"train": 4000, "validation": 800, "test": 800}
TARGETS = {
    "sum": lambda labels: labels.sum(axis=1),
    "range": lambda labels: labels.max(axis=1) - labels.min(axis=1),
    "distinct": lambda labels: np.array(
        [len(set(row)) for row in labels.tolist()]),
}


def make_digit_sets(split, target, count, set_size=SET_SIZE, seed=0):
    """Draw `count` sets of `set_size` digits from `split`.

    Args:
        split: A `zoo.datasets.Split` of flat digits `(n, 64)`.
        target: `"sum"`, `"range"` or `"distinct"`.
        count: Number of sets.
        set_size: Elements per set. Defaults to `SET_SIZE`.
        seed: Seed of the draw. Defaults to 0.

    Returns:
        A `Split` with `x` of shape `(count, set_size, 64)` and float32
        targets `y` of shape `(count, 1)`.
    """
    if target not in TARGETS:
        raise ValueError(
            f"`target` must be one of {', '.join(TARGETS)}. "
            f"Received: target={target!r}"
        )
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(split), size=(count, set_size))
    x = split.x[picks].astype("float32")
    labels = split.y[picks]
    y = TARGETS[target](labels).astype("float32")[:, None]
    return datasets.Split(x, y)


def _digit_sets(target, seed):
    flat = datasets.load("digits-flat", seed=seed)
    parts = {}
    for offset, (part, count) in enumerate(SET_COUNTS.items()):
        parts[part] = make_digit_sets(getattr(flat, part), target, count,
                                      seed=seed * 10 + offset)
    return datasets.DataBundle(
        name=f"digit-sets-{target}",
        task="set-regression",
        train=parts["train"],
        validation=parts["validation"],
        test=parts["test"],
        info={"source": "sets of scikit-learn digits",
              "set_size": SET_SIZE, "target": target,
              "split": "sets drawn within each digits split",
              "seed": seed},
    )


for _target, _text in (("sum", "sum of the labels"),
                       ("range", "max minus min label"),
                       ("distinct", "number of distinct labels")):
    datasets.register_dataset(
        f"digit-sets-{_target}",
        f"sets of {SET_SIZE} digits (64 pixels each), target: {_text}",
    )(lambda seed=datasets.DEFAULT_SPLIT_SEED, _t=_target:
      _digit_sets(_t, seed))


class SetRecipe(SupervisedRecipe):
    """Mean squared error training; the test report adds the error of
    always predicting the training mean, for scale."""

    def evaluate(self, model, test, bundle):
        metrics = super().evaluate(model, test, bundle)
        mean = float(bundle.train.y.mean())
        metrics["test_mae_mean_baseline"] = float(
            np.abs(bundle.test.y - mean).mean())
        return metrics


class PermutationSamplingRecipe(SetRecipe):
    """`SetRecipe` that serves the subclassed Janossy model through a
    functional wrapper with a named `set` input."""

    def serving_model(self, model):
        import keras

        # The shape the model was built for, so `--set set_size=N` holds.
        shape = tuple(model.get_build_config()["input_shape"][1:])
        inputs = keras.Input(shape, name="set")
        outputs = model(inputs, training=False)
        return keras.Model(inputs, outputs, name=f"{model.name}_serving")


_INPUTS = {"set": ((None, SET_SIZE, 64), "float32")}
_OUTPUTS = {"predictions": ((None, 1), "float32")}
_REFERENCES_JANOSSY = (
    "Murphy, Srinivasan, Rao, Ribeiro (2019). Janossy pooling: learning "
    "deep permutation-invariant functions for variable-size inputs. "
    "https://arxiv.org/abs/1811.01900",
)
_TRAINING = {"epochs": 60, "batch_size": 64, "learning_rate": 1e-3}


def _head(x, head_units, output_dim):
    import keras

    for index, units in enumerate(head_units):
        x = keras.layers.Dense(units, activation="relu",
                               name=f"rho_{index}")(x)
    return keras.layers.Dense(output_dim, name="predictions")(x)


@register_model(
    "deepsets",
    family="sets",
    task="set-regression",
    inputs={"set": ((None, None, 64), "float32")},
    outputs=_OUTPUTS,
    dataset="digit-sets-sum",
    defaults={"input_dim": 64, "phi_units": [64, 64], "head_units": [64],
              "output_dim": 1},
    training=_TRAINING,
    smoke={"phi_units": [8], "head_units": [8]},
    recipe="zoo.models.sets:SetRecipe",
    pretrained=("digit-sets-sum",),
    references=(
        "Zaheer, Kottur, Ravanbakhsh, Poczos, Salakhutdinov, Smola (2017). "
        "Deep sets. https://arxiv.org/abs/1703.06114",
    ),
)
def deepsets(input_dim, phi_units, head_units, output_dim):
    """Deep Sets: a per-element MLP, sum pooling, then an MLP head.

    Sets of any size are accepted, because the sum does not depend on the
    number or order of elements.

    Args:
        input_dim: Features per element.
        phi_units: Widths of the per-element MLP.
        head_units: Widths of the head after pooling.
        output_dim: Number of outputs.
    """
    import keras

    from zoo.layers.sets import SetSumPooling

    inputs = keras.Input((None, input_dim), name="set")
    x = inputs
    for index, units in enumerate(phi_units):
        # Dense acts on the last axis, so each element is mapped alone.
        x = keras.layers.Dense(units, activation="relu",
                               name=f"phi_{index}")(x)
    x = SetSumPooling(name="sum_pooling")(x)
    return keras.Model(inputs, _head(x, head_units, output_dim),
                       name="deepsets")


@register_model(
    "janossy-kary",
    family="sets",
    task="set-regression",
    inputs=_INPUTS,
    outputs=_OUTPUTS,
    dataset="digit-sets-sum",
    defaults={"input_dim": 64, "set_size": SET_SIZE, "k": 2,
              "phi_units": [64, 64], "head_units": [64], "output_dim": 1},
    training=_TRAINING,
    smoke={"phi_units": [8], "head_units": [8]},
    recipe="zoo.models.sets:SetRecipe",
    references=_REFERENCES_JANOSSY,
)
def janossy_kary(input_dim, set_size, k, phi_units, head_units, output_dim):
    """k-ary Janossy pooling over all ordered k-tuples, then an MLP head.

    Args:
        input_dim: Features per element.
        set_size: Elements per set.
        k: Tuple size (2 models pairwise interactions).
        phi_units: Widths of the tuple MLP.
        head_units: Widths of the head after pooling.
        output_dim: Number of outputs.
    """
    import keras

    from zoo.layers.sets import KaryJanossyPooling

    inputs = keras.Input((set_size, input_dim), name="set")
    x = KaryJanossyPooling(k, set_size, phi_units, name="janossy")(inputs)
    return keras.Model(inputs, _head(x, head_units, output_dim),
                       name="janossy_kary")


@register_model(
    "janossy-pisgd",
    family="sets",
    task="set-regression",
    inputs=_INPUTS,
    outputs=_OUTPUTS,
    dataset="digit-sets-sum",
    defaults={"input_dim": 64, "set_size": SET_SIZE, "lstm_units": 64,
              "head_units": [64], "output_dim": 1, "num_permutations": 16,
              "seed": 0},
    training=_TRAINING,
    smoke={"lstm_units": 8, "head_units": [8], "num_permutations": 2},
    recipe="zoo.models.sets:PermutationSamplingRecipe",
    references=_REFERENCES_JANOSSY,
)
def janossy_pisgd(input_dim, set_size, lstm_units, head_units, output_dim,
                  num_permutations, seed):
    """Full Janossy pooling with an LSTM, trained by pi-SGD.

    Args:
        input_dim: Features per element.
        set_size: Elements per set.
        lstm_units: Width of the LSTM reading the ordered set.
        head_units: Widths of the head after the LSTM.
        output_dim: Number of outputs.
        num_permutations: Orders averaged at prediction.
        seed: Base seed of the prediction orders.
    """
    from zoo.layers.sets import JanossyPermutationModel

    model = JanossyPermutationModel(
        lstm_units, head_units, output_dim, num_permutations, seed=seed,
        name="janossy_pisgd")
    model.build((None, set_size, input_dim))
    return model
