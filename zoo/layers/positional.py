"""Positional embeddings that tell a transformer where each step sits.

Self-attention is equivariant to permutations of its input steps, so a
transformer gets the order of a sequence only from a positional signal
added to its inputs. Both layers here add that signal and return
`inputs + positions`; the Keras mask of `inputs` passes through unchanged.
"""

import logging
import math

import keras
from keras import ops

logger = logging.getLogger(__name__)


@keras.saving.register_keras_serializable(package="zoo")
class LearnedPositionalEmbedding(keras.layers.Layer):
    """Add a trained vector per position to a sequence of features.

    Args:
        max_length: Maximum sequence length. The layer owns one vector per
            position `0 .. max_length - 1`.
        initializer: Initializer of the position vectors. Defaults to
            `"glorot_uniform"`.
        **kwargs: Base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call arguments:
        inputs: Tensor of shape `(batch, steps, features)` with
            `steps <= max_length`.

    Returns:
        `inputs` plus the vectors of positions `0 .. steps - 1`, same shape.

    Example:

    ```python
    layer = LearnedPositionalEmbedding(max_length=32)
    y = layer(keras.random.normal((2, 10, 16)))  # (2, 10, 16)
    ```

    Note: a sequence longer than `max_length` raises a `ValueError` when
    the length is known while tracing. Inside a graph with an unknown
    length, it fails at run time with a shape error instead.

    References:
        Vaswani et al. (2017). Attention Is All You Need (compares learned
        and sinusoidal position encodings). https://arxiv.org/abs/1706.03762
    """

    def __init__(self, max_length, initializer="glorot_uniform", **kwargs):
        if not isinstance(max_length, int) or max_length <= 0:
            raise ValueError(
                "`max_length` must be a positive integer. "
                f"Received: max_length={max_length!r}"
            )
        super().__init__(**kwargs)
        self.max_length = max_length
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True

    def build(self, inputs_shape):
        steps = inputs_shape[-2]
        if steps is not None and steps > self.max_length:
            raise ValueError(
                f"Sequences have {steps} steps but the positional embedding "
                f"has max_length={self.max_length}. Build the model with a "
                f"max_length of at least {steps}."
            )
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.max_length, inputs_shape[-1]),
            initializer=self.initializer,
        )
        self.built = True

    def call(self, inputs):
        steps = ops.shape(inputs)[-2]
        if isinstance(steps, int) and steps > self.max_length:
            raise ValueError(
                f"Sequences have {steps} steps but the positional embedding "
                f"has max_length={self.max_length}. Truncate the sequences "
                f"or build the model with a larger max_length."
            )
        # [steps, features], broadcast over the batch.
        positions = ops.slice(self.embeddings, (0, 0),
                              (steps, ops.shape(self.embeddings)[-1]))
        return inputs + ops.cast(positions, inputs.dtype)

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "max_length": self.max_length,
            "initializer": keras.initializers.serialize(self.initializer),
        })
        return config


@keras.saving.register_keras_serializable(package="zoo")
class SinusoidalPositionalEmbedding(keras.layers.Layer):
    """Add fixed sine and cosine waves of geometric wavelengths.

    Feature `2i` of position `p` gets `sin(p / max_wavelength^(2i/d))` and
    feature `2i + 1` gets the cosine of the same angle, for `d` features.
    The layer has no weights and accepts sequences of any length.

    Args:
        max_wavelength: Maximum wavelength of the waves. Defaults to
            `10000`, as in the paper.
        **kwargs: Base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call arguments:
        inputs: Tensor of shape `(batch, steps, features)`.

    Returns:
        `inputs` plus the sinusoidal signal, same shape.

    Example:

    ```python
    layer = SinusoidalPositionalEmbedding()
    y = layer(keras.random.normal((2, 10, 16)))  # (2, 10, 16)
    ```

    References:
        Vaswani et al. (2017). Attention Is All You Need.
        https://arxiv.org/abs/1706.03762
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        if not isinstance(max_wavelength, (int, float)) or \
                max_wavelength <= 1:
            raise ValueError(
                "`max_wavelength` must be a number greater than 1. "
                f"Received: max_wavelength={max_wavelength!r}"
            )
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength
        self.supports_masking = True

    def call(self, inputs):
        steps = ops.shape(inputs)[-2]
        features = ops.shape(inputs)[-1]
        # [steps, 1] positions times [1, features] angular frequencies.
        positions = ops.cast(ops.arange(steps), "float32")[:, None]
        index = ops.cast(ops.arange(features), "float32")
        pair = ops.floor(index / 2.0) * 2.0
        frequencies = ops.exp(
            -math.log(self.max_wavelength) * pair / ops.cast(features,
                                                              "float32"))
        angles = positions * frequencies[None, :]
        # Even features take the sine, odd ones the cosine: [steps, features].
        is_even = ops.equal(ops.mod(ops.arange(features), 2), 0)
        signal = ops.where(is_even[None, :], ops.sin(angles), ops.cos(angles))
        return inputs + ops.cast(signal, inputs.dtype)

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config
