"""Modern Hopfield models: an associative memory and two classifiers.

- `hopfield-memory` stores the binarized training digits and retrieves
  them from half-occluded or noisy queries (`HopfieldLayer` with static,
  untrained patterns). Its recipe "trains" it by storing the patterns.
- `hopfield-set-classifier` classifies a digit given as an unordered set of
  its pixels `(row, column, intensity)`, pooled by `HopfieldPooling`.
- `hopfield-lookup` classifies the 64 digit pixels by looking them up in
  learned stored patterns (`HopfieldLayer`).

The layers live in `zoo.layers.hopfield`; this module imports Keras only
inside builders and recipe methods.
"""

import logging

import numpy as np

from training.recipes import Recipe
from zoo import datasets
from zoo.registry import register_model

logger = logging.getLogger(__name__)

_REFERENCES = (
    "Ramsauer et al. (2020). Hopfield Networks is All You Need. "
    "https://arxiv.org/abs/2008.02217",
    "Krotov, Hopfield (2016). Dense Associative Memory for Pattern "
    "Recognition. https://arxiv.org/abs/1606.01164",
)

# Size of the training split of the digits (stratified 70/15/15 of 1797).
DIGITS_TRAIN_SIZE = 1257
DIGITS_SET_SIZE = 64


# --- patterns and corruptions ------------------------------------------------

def binarize(images, threshold=0.5):
    """Map pixel intensities in [0, 1] to +1 (above `threshold`) or -1.

    Args:
        images: Array `(..., features)` of intensities.
        threshold: Intensity above which a pixel is +1. Defaults to 0.5.

    Returns:
        A float32 array of +1 and -1 of the same shape.
    """
    return np.where(np.asarray(images) > threshold, 1.0, -1.0).astype(
        "float32")


def occlude(patterns, fraction=0.5):
    """Set the last `fraction` of each pattern's entries to zero.

    For the 8x8 digits in row order, `fraction=0.5` hides the bottom half.

    Args:
        patterns: Array `(count, features)`.
        fraction: Fraction of the entries to hide, in (0, 1). Defaults to
            0.5.

    Returns:
        A float32 copy with the hidden entries set to 0.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(
            f"`fraction` must be in (0, 1). Received: fraction={fraction!r}"
        )
    queries = np.array(patterns, dtype="float32")
    start = queries.shape[-1] - int(round(fraction * queries.shape[-1]))
    queries[..., start:] = 0.0
    return queries


def flip(patterns, rate, seed=0):
    """Flip the sign of each entry with probability `rate`.

    Args:
        patterns: Array of +1 and -1 entries.
        rate: Probability of a flip, in [0, 1].
        seed: Seed of the flips. Defaults to 0.

    Returns:
        A float32 copy with flipped entries.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"`rate` must be in [0, 1]. Received: rate={rate!r}")
    rng = np.random.default_rng(seed)
    signs = np.where(rng.random(np.shape(patterns)) < rate, -1.0, 1.0)
    return (np.asarray(patterns) * signs).astype("float32")


def exact_fraction(retrieved, patterns):
    """Return the fraction of rows whose sign equals the stored pattern."""
    retrieved = np.sign(np.asarray(retrieved))
    return float(np.mean(np.all(retrieved == np.asarray(patterns), axis=-1)))


# --- the associative memory --------------------------------------------------

@register_model(
    "hopfield-memory",
    family="hopfield",
    task="associative-memory",
    inputs={"queries": ((None, 64), "float32")},
    outputs={"patterns": ((None, 64), "float32")},
    dataset="digits-flat",
    defaults={
        "num_patterns": DIGITS_TRAIN_SIZE,
        "pattern_dim": 64,
        "beta": 4.0,
        "max_update_steps": 1,
        "update_tolerance": 1e-4,
    },
    training={"epochs": 1},
    smoke={"num_patterns": 32},
    references=_REFERENCES,
    recipe="zoo.models.hopfield:MemoryRecipe",
    pretrained=("digits",),
)
def hopfield_memory(num_patterns, pattern_dim, beta, max_update_steps,
                    update_tolerance):
    """Associative memory of digits retrieving from corrupted queries.

    The memory stores `num_patterns` patterns `Y` as static, untrained
    weights and maps a query `xi` (+1, -1 or 0 for unknown entries) to
    `Y^T softmax(beta Y xi)`, repeated up to `max_update_steps` times. Its
    recipe stores the binarized training digits; `sign` of the output is
    the retrieved pattern.

    Args:
        num_patterns: Number of stored patterns.
        pattern_dim: Size of each pattern (64 for the 8x8 digits).
        beta: Inverse temperature; larger values retrieve single patterns
            rather than mixtures.
        max_update_steps: Updates per query.
        update_tolerance: Updates stop once a query changes by less.

    Note:
        Three updates retrieve more of the half-occluded digits exactly
        than one (73% against 64% at `beta=4`). But a query whose visible
        half matches several digits settles near an unstable mixture of
        them, where float32 rounding grows with every update: XLA and the
        TensorFlow kernels then differ by up to 1e-3 after three updates
        and by about 1e-6 after one. The default is one update so that the
        export gives the same outputs on every backend.
    """
    import keras

    from zoo.layers.hopfield import HopfieldLayer

    inputs = keras.Input(shape=(pattern_dim,), name="queries")
    memory = HopfieldLayer(
        num_patterns,
        pattern_dim=pattern_dim,
        separate_values=False,
        static_state=True,
        normalize_state=False,
        normalize_stored=False,
        normalize_projection=False,
        use_output_projection=False,
        beta=beta,
        max_update_steps=max_update_steps,
        update_tolerance=update_tolerance,
        pattern_initializer=keras.initializers.RandomUniform(-1.0, 1.0),
        trainable=False,
        name="memory",
    )
    return keras.Model(inputs, memory(inputs), name="hopfield_memory")


def store_patterns(model, patterns):
    """Store `patterns` `(num_patterns, pattern_dim)` in a memory model."""
    layer = model.get_layer("memory")
    expected = tuple(layer.stored_patterns.shape)
    if tuple(np.shape(patterns)) != expected:
        raise ValueError(
            f"The memory stores {expected[0]} patterns of size {expected[1]}. "
            "Build it with `num_patterns` equal to the number of patterns to "
            f"store. Received: patterns of shape {tuple(np.shape(patterns))}"
        )
    layer.stored_patterns.assign(np.asarray(patterns, dtype="float32"))


def _retrieve(model, queries, batch_size=512):
    # Direct calls skip the tf.function tracing that `predict` starts with.
    parts = [np.asarray(model(queries[start:start + batch_size],
                              training=False))
             for start in range(0, len(queries), batch_size)]
    return np.concatenate(parts, axis=0)


def memory_metrics(model, stored, labels, unseen, unseen_labels, seed):
    """Measure retrieval of the stored digits from corrupted queries.

    Args:
        model: A `hopfield-memory` model storing `stored`.
        stored: The stored +1/-1 patterns.
        labels: Class of each stored pattern.
        unseen: Binarized digits that are not stored.
        unseen_labels: Their classes.
        seed: Seed of the flipped pixels.

    Returns:
        A dict: `occluded_exact` (fraction retrieved exactly from the top
        half), `occluded_pixel_accuracy` (fraction of hidden pixels
        restored), `noisy_exact` (from 10% flipped pixels) and
        `unseen_label_accuracy` (class of the stored pattern nearest to the
        completion of a half-occluded unseen digit).
    """
    occluded = occlude(stored)
    retrieved = _retrieve(model, occluded)
    hidden = occluded == 0
    pixel_accuracy = float(np.mean(
        (np.sign(retrieved) == stored)[hidden]))
    noisy = _retrieve(model, flip(stored, 0.1, seed=seed))
    completed = _retrieve(model, occlude(unseen))
    nearest = np.argmax(completed @ stored.T, axis=-1)
    return {
        "occluded_exact": exact_fraction(retrieved, stored),
        "occluded_pixel_accuracy": pixel_accuracy,
        "noisy_exact": exact_fraction(noisy, stored),
        "unseen_label_accuracy": float(np.mean(labels[nearest] ==
                                               unseen_labels)),
    }


class MemoryRecipe(Recipe):
    """Store the binarized training digits; measure retrieval.

    "Training" stores the first `num_patterns` binarized training images
    as the memory's patterns in one epoch, without gradients, and runs the
    shared callbacks around it so the run folder gets `best.keras` and its
    history like any other run. Validation and test metrics are those of
    `memory_metrics`, with different flip seeds and the validation or test
    split as the unseen digits.
    """

    monitor = "val_occluded_exact"
    monitor_mode = "max"

    def compile(self, model):
        # Nothing is trained; mean squared error to the clean pattern is the
        # loss `evaluate` reports for corrupted queries.
        model.compile(loss="mse")

    def _stored(self, model, bundle):
        count = int(model.get_layer("memory").stored_patterns.shape[0])
        if count > len(bundle.train):
            raise ValueError(
                f"The memory stores {count} patterns, but the training split "
                f"of '{bundle.name}' has {len(bundle.train)}. Set "
                f"`--set num_patterns={len(bundle.train)}` or less."
            )
        return (binarize(bundle.train.x[:count]),
                np.asarray(bundle.train.y[:count]))

    def datasets(self, bundle, augment=None):
        self._bundle = bundle
        return super().datasets(bundle, augment)

    def fit(self, model, train, validation, callbacks, initial_epoch=0):
        import keras

        bundle = self._bundle
        stored, labels = self._stored(model, bundle)
        history = keras.callbacks.History()
        callback_list = keras.callbacks.CallbackList(
            list(callbacks) + [history], model=model,
            epochs=initial_epoch + 1, steps=1, verbose=0)
        callback_list.on_train_begin()
        callback_list.on_epoch_begin(initial_epoch)
        store_patterns(model, stored)
        metrics = memory_metrics(
            model, stored, labels, binarize(bundle.validation.x),
            np.asarray(bundle.validation.y), seed=self.settings["seed"] + 1)
        loss = float(np.mean(np.square(
            _retrieve(model, occlude(stored)) - stored)))
        logs = {"loss": loss, **{f"val_{k}": v for k, v in metrics.items()}}
        callback_list.on_epoch_end(initial_epoch, logs)
        callback_list.on_train_end(logs)
        return history

    def evaluate(self, model, test, bundle):
        stored, labels = self._stored(model, bundle)
        metrics = memory_metrics(
            model, stored, labels, binarize(bundle.test.x),
            np.asarray(bundle.test.y), seed=self.settings["seed"] + 2)
        loss = float(np.mean(np.square(
            _retrieve(model, occlude(stored)) - stored)))
        return {"test_loss": loss,
                **{f"test_{k}": v for k, v in metrics.items()}}

    def sample_inputs(self, bundle, count=8):
        return {"queries": occlude(binarize(bundle.test.x[:count]))}


# --- digits as sets of pixels ------------------------------------------------

@datasets.register_dataset(
    "digits-sets", "the digits as unordered sets of 64 pixels (row, column, "
    "intensity), 10 classes (scikit-learn)")
def _load_digit_sets(seed=datasets.DEFAULT_SPLIT_SEED):
    bundle = datasets.load("digits-flat", seed=seed)
    rows, columns = np.divmod(np.arange(DIGITS_SET_SIZE), 8)
    # Each pixel is (row / 7, column / 7, intensity), in [0, 1].
    positions = np.stack([rows, columns], axis=-1).astype("float32") / 7.0
    rng = np.random.default_rng(seed)
    for part in (bundle.train, bundle.validation, bundle.test):
        count = len(part)
        elements = np.concatenate(
            [np.broadcast_to(positions, (count, DIGITS_SET_SIZE, 2)),
             part.x[..., None]], axis=-1)
        # Shuffle the pixels of each digit: only the set carries meaning.
        order = np.argsort(rng.random((count, DIGITS_SET_SIZE)), axis=-1)
        part.x = np.take_along_axis(elements, order[..., None],
                                    axis=1).astype("float32")
    bundle.name = "digits-sets"
    bundle.task = "set-classification"
    bundle.info = {**bundle.info,
                   "elements": "(row / 7, column / 7, pixel / 16), shuffled "
                   "per digit"}
    return bundle


# --- classifiers -------------------------------------------------------------

def _check_units(argument, units):
    if not units or any(not isinstance(u, int) or isinstance(u, bool)
                        or u <= 0 for u in units):
        raise ValueError(
            f"`{argument}` must be a non-empty list of positive integers. "
            f"Received: {argument}={units!r}"
        )


def _check_classifier(num_classes, dropout):
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"`num_classes` must be an integer >= 2. Received: "
            f"num_classes={num_classes!r}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"`dropout` must be in [0, 1). Received: dropout={dropout!r}"
        )


@register_model(
    "hopfield-set-classifier",
    family="hopfield",
    task="set-classification",
    inputs={"sets": ((None, DIGITS_SET_SIZE, 3), "float32")},
    outputs={"probabilities": ((None, 10), "float32")},
    dataset="digits-sets",
    defaults={
        "set_size": DIGITS_SET_SIZE,
        "element_dim": 3,
        "num_classes": 10,
        "element_units": [64, 64],
        "num_blocks": 1,
        "num_queries": 4,
        "num_heads": 4,
        "key_dim": 16,
        "max_update_steps": 1,
        "dense_units": 128,
        "dropout": 0.1,
    },
    training={"epochs": 80, "batch_size": 32, "learning_rate": 2e-3,
              "patience": 15},
    smoke={"element_units": [8], "num_blocks": 1, "num_queries": 1,
           "num_heads": 1, "key_dim": 4, "dense_units": 8},
    references=_REFERENCES,
    pretrained=("digits",),
)
def hopfield_set_classifier(set_size, element_dim, num_classes,
                            element_units, num_blocks, num_queries,
                            num_heads, key_dim, max_update_steps,
                            dense_units, dropout):
    """Set classifier: element MLP, Hopfield pooling, dense head.

    Each element passes through the same ReLU layers, then `num_blocks`
    residual `Hopfield` blocks in which the elements associate with each
    other (self-association). `HopfieldPooling` with `num_queries` learned
    queries pools the set, and a ReLU layer
    named `embedding` and a softmax layer named `probabilities` classify
    it. The output does not depend on the order of the elements.

    Args:
        set_size: Number of elements per set, or `None` for any.
        element_dim: Features per element.
        num_classes: Number of classes.
        element_units: Width of each per-element Dense layer.
        num_blocks: Residual self-association blocks before the pooling.
        num_queries: Learned state patterns of the pooling.
        num_heads: Heads of the pooling.
        key_dim: Size of each head.
        max_update_steps: Hopfield update steps of the pooling.
        dense_units: Width of the `embedding` layer.
        dropout: Dropout on the association and before the head.
    """
    import keras

    from zoo.layers.hopfield import Hopfield, HopfieldPooling

    _check_units("element_units", element_units)
    _check_classifier(num_classes, dropout)
    if not isinstance(num_blocks, int) or num_blocks < 0:
        raise ValueError(
            "`num_blocks` must be a non-negative integer. Received: "
            f"num_blocks={num_blocks!r}"
        )
    inputs = keras.Input(shape=(set_size, element_dim), name="sets")
    x = inputs
    for index, units in enumerate(element_units):
        x = keras.layers.Dense(units, activation="relu",
                               name=f"element_{index}")(x)
    for index in range(num_blocks):
        associated = Hopfield(
            num_heads=num_heads, key_dim=key_dim,
            max_update_steps=max_update_steps, dropout=dropout,
            name=f"association_{index}",
        )(x, x)
        x = keras.layers.Add(name=f"residual_{index}")([x, associated])
    x = HopfieldPooling(
        num_queries=num_queries, num_heads=num_heads, key_dim=key_dim,
        max_update_steps=max_update_steps, dropout=dropout, name="pooling",
    )(x)
    x = keras.layers.Dense(dense_units, activation="relu",
                           name="embedding")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax",
                                 name="probabilities")(x)
    return keras.Model(inputs, outputs, name="hopfield_set_classifier")


@register_model(
    "hopfield-lookup",
    family="hopfield",
    task="image-classification",
    inputs={"features": ((None, 64), "float32")},
    outputs={"probabilities": ((None, 10), "float32")},
    dataset="digits-flat",
    defaults={
        "input_dim": 64,
        "num_classes": 10,
        "num_patterns": 64,
        "num_heads": 4,
        "key_dim": 16,
        "output_dim": 64,
        "dropout": 0.1,
    },
    training={"epochs": 80, "batch_size": 32, "learning_rate": 2e-3,
              "patience": 15},
    smoke={"num_patterns": 8, "num_heads": 1, "key_dim": 4,
           "output_dim": 8},
    references=_REFERENCES,
    pretrained=("digits",),
)
def hopfield_lookup(input_dim, num_classes, num_patterns, num_heads, key_dim,
                    output_dim, dropout):
    """Lookup classifier: inputs retrieve from learned stored patterns.

    A `HopfieldLayer` with `num_patterns` trainable stored and value
    patterns maps the features to `output_dim` values (the layer named
    `embedding`), and a softmax layer named `probabilities` classifies
    them.

    Args:
        input_dim: Number of input features.
        num_classes: Number of classes.
        num_patterns: Learned stored patterns.
        num_heads: Heads of the lookup.
        key_dim: Size of each head of the stored patterns.
        output_dim: Width of the lookup's output projection.
        dropout: Dropout on the association and before the head.
    """
    import keras

    from zoo.layers.hopfield import HopfieldLayer

    _check_classifier(num_classes, dropout)
    inputs = keras.Input(shape=(input_dim,), name="features")
    x = HopfieldLayer(
        num_patterns, num_heads=num_heads, key_dim=key_dim,
        output_dim=output_dim, dropout=dropout, name="embedding",
    )(inputs)
    x = keras.layers.Activation("relu", name="embedding_relu")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax",
                                 name="probabilities")(x)
    return keras.Model(inputs, outputs, name="hopfield_lookup")
