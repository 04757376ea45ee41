"""Transformer encoder forecaster and sequence classifier.

Each model projects the steps of `sequence` to `hidden_dim` features, adds
a positional embedding, runs a stack of `zoo.layers.TransformerBlock`s and
averages the outputs over the real steps before its head. `padding_mask`
(1 at real steps, 0 at right padding) keeps padded steps out of attention
and out of the average, so padding does not change the outputs.
"""

import logging

from zoo.models.lstm import (
    check_sequence_arguments,
    classifier_head,
    forecast_head,
    masked_inputs,
)
from zoo.registry import register_model

logger = logging.getLogger(__name__)

_REFERENCES = (
    "Vaswani et al. (2017). Attention Is All You Need. "
    "https://arxiv.org/abs/1706.03762",
)
_POSITIONAL = ("learned", "sinusoidal", "none")
_POOLING = ("average", "last")


def transformer_encoder(x, hidden_dim, num_layers, num_heads,
                        intermediate_dim, dropout, positional, max_length,
                        norm_position, pooling):
    """Embed, add positions and apply the block stack; return pooled features.

    Args:
        x: Masked sequence `(batch, steps, features)`.
        hidden_dim: Width `d` of the blocks.
        num_layers: Number of blocks.
        num_heads: Attention heads per block.
        intermediate_dim: Feed-forward width `f` of the blocks.
        dropout: Dropout rate in the blocks and before the head.
        positional: `"learned"`, `"sinusoidal"` or `"none"`.
        max_length: Maximum sequence length of the learned positional
            embedding.
        norm_position: `"post"` or `"pre"` layer normalization.
        pooling: `"average"` over the real steps, or `"last"` real step.

    Returns:
        Pooled features `(batch, hidden_dim)`.
    """
    import keras

    from zoo.layers import (
        LastStepPooling,
        LearnedPositionalEmbedding,
        SinusoidalPositionalEmbedding,
        TransformerBlock,
    )

    if positional not in _POSITIONAL:
        raise ValueError(
            f"`positional` must be one of {', '.join(_POSITIONAL)}. "
            f"Received: positional={positional!r}"
        )
    if pooling not in _POOLING:
        raise ValueError(
            f"`pooling` must be one of {', '.join(_POOLING)}. "
            f"Received: pooling={pooling!r}"
        )
    if not isinstance(num_layers, int) or num_layers <= 0:
        raise ValueError(
            "`num_layers` must be a positive integer. "
            f"Received: num_layers={num_layers!r}"
        )
    # [batch, steps, hidden_dim]
    x = keras.layers.Dense(hidden_dim, name="embedding")(x)
    if positional == "learned":
        x = LearnedPositionalEmbedding(max_length, name="positions")(x)
    elif positional == "sinusoidal":
        x = SinusoidalPositionalEmbedding(name="positions")(x)
    for index in range(num_layers):
        x = TransformerBlock(
            hidden_dim, num_heads, intermediate_dim=intermediate_dim,
            dropout=dropout, norm_position=norm_position,
            name=f"block_{index}",
        )(x)
    if norm_position == "pre":
        x = keras.layers.LayerNormalization(epsilon=1e-5,
                                            name="final_norm")(x)
    # [batch, hidden_dim], from the real steps only.
    if pooling == "average":
        x = keras.layers.GlobalAveragePooling1D(name="pooling")(x)
    else:
        x = LastStepPooling(name="pooling")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return x


_COMMON_DEFAULTS = {
    "hidden_dim": 32,
    "num_layers": 2,
    "num_heads": 4,
    "intermediate_dim": 64,
    "dropout": 0.1,
    "positional": "learned",
    "norm_position": "post",
    "pooling": "average",
}
_SMOKE = {"hidden_dim": 8, "num_layers": 1, "num_heads": 2,
          "intermediate_dim": 8}


@register_model(
    "transformer-forecaster",
    family="transformer",
    task="time-series-forecasting",
    inputs={"sequence": ((None, None, 1), "float32"),
            "padding_mask": ((None, None), "int32")},
    outputs={"forecast": ((None, 1), "float32")},
    dataset="sunspots",
    defaults={"num_features": 1, "num_targets": 1, "max_length": 64,
              **_COMMON_DEFAULTS, "pooling": "last", "norm_position": "pre"},
    training={"epochs": 300, "batch_size": 16, "learning_rate": 1e-3,
              "patience": 40},
    smoke=_SMOKE,
    references=_REFERENCES,
    pretrained=("sunspots", "macrodata"),
    recipe="training.sequence:ForecastRecipe",
)
def transformer_forecaster(num_features, num_targets, max_length, hidden_dim,
                           num_layers, num_heads, intermediate_dim, dropout,
                           positional, norm_position, pooling):
    """Transformer encoder forecaster of the next step of a time series.

    Inputs are standardized with statistics of the training part (set by
    the recipe before training) and the forecast is in the original units.
    With macrodata, set `num_features=6` and `num_targets=2`.

    Args:
        num_features: Features per step.
        num_targets: Forecast values per sequence.
        max_length: Maximum sequence length (learned positions only).
        hidden_dim: Width `d` of the blocks; divisible by `num_heads`.
        num_layers: Number of transformer blocks.
        num_heads: Attention heads per block.
        intermediate_dim: Feed-forward width of the blocks.
        dropout: Dropout rate in the blocks and before the head.
        positional: `"learned"`, `"sinusoidal"` or `"none"`.
        norm_position: `"post"` or `"pre"` layer normalization.
        pooling: `"average"` over the real steps, or `"last"` real step.
    """
    import keras

    check_sequence_arguments(num_features, dropout, num_targets,
                             "num_targets")
    sequence, padding_mask, x = masked_inputs(num_features, True)
    x = transformer_encoder(x, hidden_dim, num_layers, num_heads,
                            intermediate_dim, dropout, positional,
                            max_length, norm_position, pooling)
    return keras.Model([sequence, padding_mask],
                       forecast_head(x, num_targets),
                       name="transformer_forecaster")


@register_model(
    "transformer-classifier",
    family="transformer",
    task="sequence-classification",
    inputs={"sequence": ((None, None, 8), "float32"),
            "padding_mask": ((None, None), "int32")},
    outputs={"probabilities": ((None, 10), "float32")},
    dataset="digits-sequence",
    defaults={"num_features": 8, "num_classes": 10, "max_length": 8,
              **_COMMON_DEFAULTS, "hidden_dim": 64, "intermediate_dim": 128},
    training={"epochs": 80, "batch_size": 32, "learning_rate": 1e-3,
              "patience": 20},
    smoke=_SMOKE,
    references=_REFERENCES,
    pretrained=("digits",),
    recipe="training.sequence:SequenceClassifierRecipe",
)
def transformer_classifier(num_features, num_classes, max_length, hidden_dim,
                           num_layers, num_heads, intermediate_dim, dropout,
                           positional, norm_position, pooling):
    """Transformer encoder classifier of sequences, such as digit rows.

    Args:
        num_features: Features per step (8 pixels per digit row).
        num_classes: Number of classes of the softmax head.
        max_length: Maximum sequence length (learned positions only).
        hidden_dim: Width `d` of the blocks; divisible by `num_heads`.
        num_layers: Number of transformer blocks.
        num_heads: Attention heads per block.
        intermediate_dim: Feed-forward width of the blocks.
        dropout: Dropout rate in the blocks and before the head.
        positional: `"learned"`, `"sinusoidal"` or `"none"`.
        norm_position: `"post"` or `"pre"` layer normalization.
        pooling: `"average"` over the real steps, or `"last"` real step.
    """
    import keras

    check_sequence_arguments(num_features, dropout, num_classes,
                             "num_classes", minimum=2)
    sequence, padding_mask, x = masked_inputs(num_features, False)
    x = transformer_encoder(x, hidden_dim, num_layers, num_heads,
                            intermediate_dim, dropout, positional,
                            max_length, norm_position, pooling)
    return keras.Model([sequence, padding_mask],
                       classifier_head(x, num_classes),
                       name="transformer_classifier")
