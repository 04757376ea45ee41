"""Attach a padding mask that arrives as a model input to a sequence."""

import logging

import keras
from keras import ops

logger = logging.getLogger(__name__)


@keras.saving.register_keras_serializable(package="zoo")
class ApplyPaddingMask(keras.layers.Layer):
    """Zero the padded steps of a sequence and attach the Keras mask.

    Models of the zoo receive variable-length sequences as a right-padded
    batch plus an explicit `padding_mask` input, as KerasHub models do.
    The mask is an input of its own because TF Serving signatures have no
    optional inputs, and because a zero row can be a real step (a blank row
    of a digit). This layer turns that input into the Keras mask, which
    masking-aware layers downstream (`LSTM`, `TransformerBlock`,
    `GlobalAveragePooling1D`) read.

    Args:
        **kwargs: Base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call arguments:
        inputs: A list `[sequence, padding_mask]`: `sequence` of shape
            `(batch, steps, features)` and `padding_mask` of shape
            `(batch, steps)`, non-zero at real steps.

    Returns:
        `sequence` with padded steps set to zero, carrying the boolean
        padding mask as its Keras mask.

    Example:

    ```python
    sequence = keras.Input((None, 8))
    padding_mask = keras.Input((None,), dtype="int32")
    x = ApplyPaddingMask()([sequence, padding_mask])
    x = keras.layers.LSTM(16)(x)  # skips the padded steps
    ```
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        sequence, padding_mask = inputs
        # [batch, steps, 1], so padded steps become zero in every feature.
        keep = ops.cast(ops.not_equal(padding_mask, 0), sequence.dtype)
        return sequence * keep[..., None]

    def compute_mask(self, inputs, previous_mask=None):
        return ops.not_equal(inputs[1], 0)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape[0]


@keras.saving.register_keras_serializable(package="zoo")
class LastStepPooling(keras.layers.Layer):
    """Return the features of the last real step of each sequence.

    With a right-padded batch, the last real step of a row is at index
    `sum(mask) - 1`; without a mask it is the last step. A forecaster reads
    the most recent step this way, as an LSTM's final state does.

    Args:
        **kwargs: Base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call arguments:
        inputs: Tensor of shape `(batch, steps, features)`.
        mask: Optional boolean `(batch, steps)`, right-padded. Defaults to
            the Keras mask of `inputs`.

    Returns:
        A tensor of shape `(batch, features)`.

    Example:

    ```python
    x = keras.ops.reshape(keras.ops.arange(12.0), (2, 3, 2))
    mask = keras.ops.array([[True, True, True], [True, False, False]])
    LastStepPooling()(x, mask=mask)  # [[4, 5], [6, 7]]
    ```
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        steps = ops.shape(inputs)[1]
        if mask is None:
            last = ops.full((ops.shape(inputs)[0],), steps - 1, "int32")
        else:
            # [batch], the index of the last real step (0 for an empty row).
            lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
            last = ops.maximum(lengths - 1, 0)
        # [batch, 1, features] gathered along the steps, then squeezed.
        index = ops.cast(last, "int32")[:, None, None]
        return ops.take_along_axis(inputs, index, axis=1)[:, 0, :]

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[0], inputs_shape[2])
