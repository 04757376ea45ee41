"""Dense multilayer perceptrons with classifier and regressor heads."""

from zoo._validation import check_positive_ints
from zoo.registry import register_model

_REFERENCES = (
    "Rumelhart, Hinton, Williams (1986). Learning representations by "
    "back-propagating errors. https://doi.org/10.1038/323533a0",
)


def _check_common(input_dim, hidden_units, dropout):
    if not isinstance(input_dim, int) or input_dim <= 0:
        raise ValueError(
            f"`input_dim` must be a positive integer. Received: {input_dim!r}"
        )
    check_positive_ints("hidden_units", hidden_units)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"`dropout` must be in [0, 1). Received: {dropout!r}"
        )


def build_mlp(input_dim, hidden_units, activation, dropout, head_units,
              head_activation, input_name, output_name, name):
    """Build a functional MLP: Dense blocks with dropout, then a head.

    The last hidden activation is the layer named `embedding`, so transfer
    learning can cut the model there.
    """
    import keras

    _check_common(input_dim, hidden_units, dropout)
    inputs = keras.Input(shape=(input_dim,), name=input_name)
    x = inputs
    for index, units in enumerate(hidden_units):
        is_last = index == len(hidden_units) - 1
        x = keras.layers.Dense(
            units, activation=activation,
            name="embedding" if is_last else f"dense_{index}",
        )(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{index}")(x)
    outputs = keras.layers.Dense(head_units, activation=head_activation,
                                 name=output_name)(x)
    return keras.Model(inputs, outputs, name=name)


@register_model(
    "mlp",
    family="dense",
    task="image-classification",
    inputs={"features": ((None, 64), "float32")},
    outputs={"probabilities": ((None, 10), "float32")},
    dataset="digits-flat",
    defaults={
        "input_dim": 64,
        "num_classes": 10,
        "hidden_units": [256, 128],
        "activation": "relu",
        "dropout": 0.2,
    },
    training={"epochs": 60, "batch_size": 32, "learning_rate": 1e-3},
    smoke={"hidden_units": [8]},
    references=_REFERENCES,
    pretrained=("digits",),
)
def mlp(input_dim, num_classes, hidden_units, activation, dropout):
    """Dense MLP classifier with a softmax head.

    Args:
        input_dim: Number of input features.
        num_classes: Number of classes of the softmax head.
        hidden_units: Width of each hidden Dense layer.
        activation: Activation of the hidden layers.
        dropout: Dropout rate after each hidden layer.
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"`num_classes` must be an integer >= 2. Received: {num_classes!r}"
        )
    return build_mlp(input_dim, hidden_units, activation, dropout,
                     num_classes, "softmax", "features", "probabilities",
                     "mlp")


@register_model(
    "mlp-regressor",
    family="dense",
    task="regression",
    inputs={"features": ((None, 10), "float32")},
    outputs={"predictions": ((None, 1), "float32")},
    dataset="diabetes",
    defaults={
        "input_dim": 10,
        "output_dim": 1,
        "hidden_units": [64, 32],
        "activation": "relu",
        "dropout": 0.1,
    },
    training={"epochs": 150, "batch_size": 32, "learning_rate": 1e-3},
    smoke={"hidden_units": [8]},
    references=_REFERENCES,
)
def mlp_regressor(input_dim, output_dim, hidden_units, activation, dropout):
    """Dense MLP regressor with a linear head.

    Args:
        input_dim: Number of input features.
        output_dim: Number of regression targets.
        hidden_units: Width of each hidden Dense layer.
        activation: Activation of the hidden layers.
        dropout: Dropout rate after each hidden layer.
    """
    if not isinstance(output_dim, int) or output_dim <= 0:
        raise ValueError(
            f"`output_dim` must be a positive integer. Received: {output_dim!r}"
        )
    return build_mlp(input_dim, hidden_units, activation, dropout,
                     output_dim, None, "features", "predictions",
                     "mlp_regressor")
