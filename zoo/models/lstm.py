"""Stacked LSTM forecaster and sequence classifier.

Both models take a right-padded batch `sequence` `(batch, steps,
features)` and a `padding_mask` `(batch, steps)` that is 1 at real steps
and 0 at padding, so they serve variable-length sequences. The LSTM layers
skip the padded steps, so a padded sequence gets the same output as the
same sequence without padding.

Keras picks cuDNN kernels for an LSTM with `use_cudnn="auto"` when it runs
on a GPU, and a SavedModel traced there contains `CudnnRNNV3` ops that a
CPU-only TF Serving cannot run. `generic_lstm_model` returns a copy with
`use_cudnn=False`, and the recipes export that copy.
"""

import logging

from zoo.registry import register_model

logger = logging.getLogger(__name__)

_REFERENCES = (
    "Hochreiter, Schmidhuber (1997). Long Short-Term Memory. "
    "https://doi.org/10.1162/neco.1997.9.8.1735",
)
_FORECAST_RECIPE = "training.sequence:ForecastRecipe"
_CLASSIFIER_RECIPE = "training.sequence:SequenceClassifierRecipe"


def check_sequence_arguments(num_features, dropout, head_size, head_name,
                             minimum=1):
    """Raise `ValueError` for an invalid feature count, dropout or head."""
    if not isinstance(num_features, int) or num_features <= 0:
        raise ValueError(
            "`num_features` must be a positive integer. "
            f"Received: num_features={num_features!r}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: {dropout!r}")
    if not isinstance(head_size, int) or head_size < minimum:
        raise ValueError(
            f"`{head_name}` must be an integer >= {minimum}. "
            f"Received: {head_name}={head_size!r}"
        )


def masked_inputs(num_features, standardize):
    """Return the `sequence` and `padding_mask` inputs and the masked steps.

    Args:
        num_features: Features per step.
        standardize: Insert the `Normalization` layer `standardize` (set
            from the training statistics by the forecast recipe) before
            masking.

    Returns:
        `(sequence, padding_mask, x)`: the two `keras.Input`s and the
        sequence with padded steps zeroed and the Keras mask attached.
    """
    import keras

    from zoo.layers import ApplyPaddingMask

    sequence = keras.Input(shape=(None, num_features), name="sequence")
    padding_mask = keras.Input(shape=(None,), dtype="int32",
                               name="padding_mask")
    x = sequence
    if standardize:
        x = keras.layers.Normalization(axis=-1, name="standardize")(x)
    x = ApplyPaddingMask(name="padding")([x, padding_mask])
    return sequence, padding_mask, x


def forecast_head(x, num_targets):
    """Map features to forecasts in the original units of the targets."""
    import keras

    # [batch, num_targets] in standardized units, then the inverse of the
    # targets' standardization (set by the forecast recipe).
    x = keras.layers.Dense(num_targets, name="head")(x)
    return keras.layers.Normalization(axis=-1, invert=True,
                                      name="forecast")(x)


def classifier_head(x, num_classes):
    """Map features to class probabilities with a softmax layer."""
    import keras

    return keras.layers.Dense(num_classes, activation="softmax",
                              name="probabilities")(x)


def lstm_stack(x, units, dropout, use_cudnn):
    """Apply stacked LSTM layers and return the last layer's final state."""
    import keras

    if not units or any(not isinstance(u, int) or u <= 0 for u in units):
        raise ValueError(
            "`units` must be a non-empty list of positive integers. "
            f"Received: units={units!r}"
        )
    for index, width in enumerate(units):
        last = index == len(units) - 1
        # [batch, steps, width], or [batch, width] for the last layer.
        x = keras.layers.LSTM(width, return_sequences=not last,
                              use_cudnn=use_cudnn, name=f"lstm_{index}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{index}")(x)
    return x


@register_model(
    "lstm-forecaster",
    family="lstm",
    task="time-series-forecasting",
    inputs={"sequence": ((None, None, 1), "float32"),
            "padding_mask": ((None, None), "int32")},
    outputs={"forecast": ((None, 1), "float32")},
    dataset="sunspots",
    defaults={
        "num_features": 1,
        "num_targets": 1,
        "units": [64, 32],
        "dropout": 0.1,
        "use_cudnn": "auto",
    },
    training={"epochs": 300, "batch_size": 16, "learning_rate": 3e-3,
              "patience": 40},
    smoke={"units": [4]},
    references=_REFERENCES,
    pretrained=("sunspots", "macrodata"),
    recipe=_FORECAST_RECIPE,
)
def lstm_forecaster(num_features, num_targets, units, dropout, use_cudnn):
    """Stacked LSTM forecaster of the next step of a time series.

    The model standardizes its inputs with statistics of the training part
    (set by the recipe before training), runs the LSTM stack, and maps the
    last state to the forecast in the original units. With macrodata, set
    `num_features=6` and `num_targets=2`.

    Args:
        num_features: Features per step.
        num_targets: Forecast values per sequence.
        units: Width of each LSTM layer, first to last.
        dropout: Dropout rate after each LSTM layer.
        use_cudnn: `"auto"`, `True` or `False`, passed to `keras.layers.LSTM`.
    """
    import keras

    check_sequence_arguments(num_features, dropout, num_targets,
                             "num_targets")
    sequence, padding_mask, x = masked_inputs(num_features, True)
    x = lstm_stack(x, units, dropout, use_cudnn)
    return keras.Model([sequence, padding_mask],
                       forecast_head(x, num_targets), name="lstm_forecaster")


@register_model(
    "lstm-classifier",
    family="lstm",
    task="sequence-classification",
    inputs={"sequence": ((None, None, 8), "float32"),
            "padding_mask": ((None, None), "int32")},
    outputs={"probabilities": ((None, 10), "float32")},
    dataset="digits-sequence",
    defaults={
        "num_features": 8,
        "num_classes": 10,
        "units": [128],
        "dropout": 0.2,
        "use_cudnn": "auto",
    },
    training={"epochs": 100, "batch_size": 32, "learning_rate": 1e-3,
              "patience": 25},
    smoke={"units": [4]},
    references=_REFERENCES,
    pretrained=("digits",),
    recipe=_CLASSIFIER_RECIPE,
)
def lstm_classifier(num_features, num_classes, units, dropout, use_cudnn):
    """Stacked LSTM classifier of sequences, such as digits read by rows.

    Args:
        num_features: Features per step (8 pixels per digit row).
        num_classes: Number of classes of the softmax head.
        units: Width of each LSTM layer, first to last.
        dropout: Dropout rate after each LSTM layer.
        use_cudnn: `"auto"`, `True` or `False`, passed to `keras.layers.LSTM`.
    """
    import keras

    check_sequence_arguments(num_features, dropout, num_classes,
                             "num_classes", minimum=2)
    sequence, padding_mask, x = masked_inputs(num_features, False)
    x = lstm_stack(x, units, dropout, use_cudnn)
    return keras.Model([sequence, padding_mask],
                       classifier_head(x, num_classes),
                       name="lstm_classifier")


def generic_lstm_model(model):
    """Return a copy of `model` whose LSTM layers never use cuDNN.

    The copy shares no variables with `model`; it gets the same weights.
    Models without an LSTM layer are returned unchanged.

    Args:
        model: A functional `keras.Model`.

    Returns:
        A `keras.Model` whose `keras.layers.LSTM` layers have
        `use_cudnn=False`, so its traced graph has no cuDNN ops.
    """
    import keras

    lstm_layers = [layer for layer in model.layers
                   if isinstance(layer, keras.layers.LSTM)]
    if not lstm_layers:
        return model
    if all(layer.use_cudnn is False for layer in lstm_layers):
        return model

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.LSTM):
            config["use_cudnn"] = False
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    # `set_weights` skips the hook that turns a `Normalization` layer's
    # variables into its statistics, which loading a file runs.
    for layer in copy.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.finalize_state()
    return copy
