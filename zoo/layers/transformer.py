"""The transformer encoder block of Vaswani et al. (2017)."""

import logging

import keras
from keras import ops

logger = logging.getLogger(__name__)

_NORM_POSITIONS = ("post", "pre")


@keras.saving.register_keras_serializable(package="zoo")
class TransformerBlock(keras.layers.Layer):
    """Transformer encoder block: self-attention and a feed-forward network.

    Each of the two sublayers (multi-head self-attention, then a two-layer
    feed-forward network) is wrapped in dropout, a residual connection and
    layer normalization. With `norm_position="post"` (the original design)
    the block computes `x = norm(x + sublayer(x))`; with `"pre"` it computes
    `x = x + sublayer(norm(x))`, which trains deep stacks more stably.

    The attention uses `keras.layers.MultiHeadAttention` with
    `key_dim = hidden_dim / num_heads`, so the block has
    `4 d^2 + 2 d f + 9 d + f` weights for `d = hidden_dim` and
    `f = intermediate_dim`. Without a causal mask and without positional
    embeddings the block is equivariant to permutations of the sequence.

    Args:
        hidden_dim: Size `d` of the input and output features. It must be
            divisible by `num_heads`.
        num_heads: Number of attention heads.
        intermediate_dim: Size `f` of the feed-forward hidden layer.
            Defaults to `4 * hidden_dim`.
        dropout: Dropout rate on each sublayer's output before the residual
            sum. Defaults to `0.0`.
        attention_dropout: Dropout rate on the attention weights. Defaults
            to `0.0`.
        activation: Activation of the feed-forward hidden layer. Defaults to
            `"relu"`, as in the paper.
        norm_position: `"post"` or `"pre"`. Defaults to `"post"`.
        causal: Whether step `t` attends only to steps `<= t`. Defaults to
            `False`.
        layer_norm_epsilon: Epsilon of both layer normalizations. Defaults
            to `1e-5`.
        **kwargs: Base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call arguments:
        inputs: Tensor of shape `(batch, steps, hidden_dim)`.
        padding_mask: Optional boolean or integer tensor `(batch, steps)`,
            true (non-zero) at real steps. Padded steps are never attended
            to, so the outputs at real steps do not depend on the padding.
            Defaults to the Keras mask of `inputs`, when it has one.
        training: Whether dropout is active.

    Returns:
        A tensor of the shape of `inputs`. The outputs at padded steps are
        defined but meaningless; the padding mask propagates to the next
        layer.

    Example:

    ```python
    block = TransformerBlock(hidden_dim=64, num_heads=4)
    x = keras.random.normal((2, 10, 64))
    mask = keras.ops.arange(10)[None, :] < keras.ops.array([[10], [6]])
    y = block(x, padding_mask=mask)  # (2, 10, 64)
    ```

    References:
        Vaswani et al. (2017). Attention Is All You Need.
        https://arxiv.org/abs/1706.03762
        Xiong et al. (2020). On Layer Normalization in the Transformer
        Architecture (pre-norm). https://arxiv.org/abs/2002.04745
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        intermediate_dim=None,
        dropout=0.0,
        attention_dropout=0.0,
        activation="relu",
        norm_position="post",
        causal=False,
        layer_norm_epsilon=1e-5,
        **kwargs,
    ):
        if not isinstance(hidden_dim, int) or hidden_dim <= 0:
            raise ValueError(
                "`hidden_dim` must be a positive integer. "
                f"Received: hidden_dim={hidden_dim!r}"
            )
        if not isinstance(num_heads, int) or num_heads <= 0:
            raise ValueError(
                "`num_heads` must be a positive integer. "
                f"Received: num_heads={num_heads!r}"
            )
        if hidden_dim % num_heads:
            raise ValueError(
                "`hidden_dim` must be divisible by `num_heads`, because each "
                "head gets hidden_dim / num_heads features. Received: "
                f"hidden_dim={hidden_dim}, num_heads={num_heads}"
            )
        if intermediate_dim is None:
            intermediate_dim = 4 * hidden_dim
        if not isinstance(intermediate_dim, int) or intermediate_dim <= 0:
            raise ValueError(
                "`intermediate_dim` must be a positive integer. "
                f"Received: intermediate_dim={intermediate_dim!r}"
            )
        for argument, rate in (("dropout", dropout),
                               ("attention_dropout", attention_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(
                    f"`{argument}` must be in [0, 1). "
                    f"Received: {argument}={rate!r}"
                )
        if norm_position not in _NORM_POSITIONS:
            raise ValueError(
                "`norm_position` must be 'post' or 'pre'. "
                f"Received: norm_position={norm_position!r}"
            )
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation = keras.activations.get(activation)
        self.norm_position = norm_position
        self.causal = bool(causal)
        self.layer_norm_epsilon = layer_norm_epsilon
        self.supports_masking = True

        self.attention = keras.layers.MultiHeadAttention(
            num_heads=num_heads,
            key_dim=hidden_dim // num_heads,
            dropout=attention_dropout,
            dtype=self.dtype_policy,
            name="attention",
        )
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy,
            name="attention_norm",
        )
        self.attention_dropout_layer = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="attention_output_dropout")
        self.intermediate_dense = keras.layers.Dense(
            intermediate_dim, activation=self.activation,
            dtype=self.dtype_policy, name="intermediate_dense",
        )
        self.output_dense = keras.layers.Dense(
            hidden_dim, dtype=self.dtype_policy, name="output_dense")
        self.feedforward_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy,
            name="feedforward_norm",
        )
        self.feedforward_dropout_layer = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="feedforward_dropout")

    def build(self, inputs_shape):
        if inputs_shape[-1] != self.hidden_dim:
            raise ValueError(
                f"TransformerBlock with hidden_dim={self.hidden_dim} needs "
                f"inputs whose last axis is {self.hidden_dim}; project them "
                "with a Dense layer first. Received: inputs shape "
                f"{tuple(inputs_shape)}"
            )
        self.attention.build(inputs_shape, inputs_shape)
        self.attention_norm.build(inputs_shape)
        self.intermediate_dense.build(inputs_shape)
        intermediate_shape = tuple(inputs_shape[:-1]) + (
            self.intermediate_dim,)
        self.output_dense.build(intermediate_shape)
        self.feedforward_norm.build(inputs_shape)
        self.built = True

    def call(self, inputs, padding_mask=None, training=None, mask=None):
        if padding_mask is None:
            padding_mask = mask
        if padding_mask is not None:
            padding_mask = ops.cast(padding_mask, "bool")

        # Self-attention sublayer: [batch, steps, hidden_dim].
        residual = inputs
        x = inputs
        if self.norm_position == "pre":
            x = self.attention_norm(x)
        # Padded keys are masked for every query: [batch, 1, steps].
        x = self.attention(
            x, x, value_mask=padding_mask, use_causal_mask=self.causal,
            training=training,
        )
        x = self.attention_dropout_layer(x, training=training)
        x = residual + x
        if self.norm_position == "post":
            x = self.attention_norm(x)

        # Feed-forward sublayer: [batch, steps, intermediate_dim], then back
        # to [batch, steps, hidden_dim].
        residual = x
        if self.norm_position == "pre":
            x = self.feedforward_norm(x)
        x = self.intermediate_dense(x)
        x = self.output_dense(x)
        x = self.feedforward_dropout_layer(x, training=training)
        x = residual + x
        if self.norm_position == "post":
            x = self.feedforward_norm(x)
        return x

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "attention_dropout": self.attention_dropout,
            "activation": keras.activations.serialize(self.activation),
            "norm_position": self.norm_position,
            "causal": self.causal,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        })
        return config
