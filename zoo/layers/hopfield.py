"""Modern Hopfield layers: `Hopfield`, `HopfieldPooling` and `HopfieldLayer`.

A modern (continuous) Hopfield network stores patterns `Y` and retrieves
from a state pattern `xi` with the update

    xi <- Y^T softmax(beta * Y xi),

which never increases the energy

    E(xi) = -lse(beta, Y xi) + 0.5 * xi^T xi + const,

and, with a large enough `beta`, converges after one update to a stored
pattern near the query (Ramsauer et al. 2020). With projections of the
state (queries), stored patterns (keys) and projected patterns (values),
one update is the attention of transformers, so these layers extend
`keras.layers.MultiHeadAttention` by several update steps, static
(unprojected) patterns and layer normalization of the patterns.

References:
    Ramsauer et al. (2020). Hopfield Networks is All You Need.
    https://arxiv.org/abs/2008.02217
    Krotov, Hopfield (2016). Dense Associative Memory for Pattern
    Recognition. https://arxiv.org/abs/1606.01164
"""

import logging
import math

import keras
from keras import ops

logger = logging.getLogger(__name__)

_LAYER_NORM_EPSILON = 1e-5


def _check_positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def hopfield_energy(state, stored, beta):
    """Compute the modern Hopfield energy of state patterns.

    `E(xi) = -lse(beta, Y xi) + 0.5 xi^T xi + log(N) / beta + 0.5 M^2`
    with `lse(beta, z) = log(sum(exp(beta z))) / beta`, `N` the number of
    stored patterns and `M` the largest stored pattern norm. The constant
    terms make the energy non-negative; the update
    `xi <- Y^T softmax(beta Y xi)` never increases it.

    Args:
        state: State patterns `xi`, shape `(..., d)`.
        stored: Stored patterns `Y`, shape `(N, d)`.
        beta: Inverse temperature, a positive float.

    Returns:
        The energy of each state pattern, shape `(...)`.

    Example:

    >>> import numpy as np
    >>> stored = np.eye(3, dtype="float32")
    >>> energy = hopfield_energy(stored[:1], stored, beta=1.0)

    References:
        Ramsauer et al. (2020). Hopfield Networks is All You Need.
        https://arxiv.org/abs/2008.02217
    """
    if not beta > 0:
        raise ValueError(f"`beta` must be positive. Received: beta={beta!r}")
    stored = ops.convert_to_tensor(stored)
    state = ops.convert_to_tensor(state, dtype=stored.dtype)
    num_patterns = ops.cast(ops.shape(stored)[0], stored.dtype)
    # scores: (..., N)
    scores = ops.matmul(state, ops.transpose(stored))
    lse = ops.logsumexp(beta * scores, axis=-1) / beta
    largest_norm = ops.max(ops.sum(ops.square(stored), axis=-1))
    return (-lse + 0.5 * ops.sum(ops.square(state), axis=-1)
            + ops.log(num_patterns) / beta + 0.5 * largest_norm)


@keras.saving.register_keras_serializable(package="zoo")
class Hopfield(keras.layers.Layer):
    """Modern Hopfield association of state patterns with stored patterns.

    The layer computes, for each head,

        Z = softmax(beta * R W_Q (Y W_K)^T) P W_V

    where `R` are the state patterns (queries), `Y` the stored patterns
    (keys) and `P` the projected patterns (values, `Y` when not given),
    then maps the concatenated heads with an output projection. With
    `beta = 1 / sqrt(key_dim)`, one update step, no normalization and the
    same weights, the layer equals `keras.layers.MultiHeadAttention`.
    Without normalization and static patterns its weights have the same
    names, shapes and order as that layer's (`query`, `key`, `value`,
    `attention_output`), so `set_weights(attention.get_weights())` copies
    them.

    With `max_update_steps > 1` the projected state pattern is first updated
    in the key space, `xi <- softmax(beta * xi K^T) K`, which lowers the
    Hopfield energy, until every state pattern changes by less than
    `update_tolerance` (Euclidean norm) or `max_update_steps - 1` updates
    have run; the last association then reads out the values.

    Args:
        num_heads: Number of heads. Defaults to 1.
        key_dim: Size of each head of the projected state and stored
            patterns. Defaults to `None`, which infers it from a static
            state or stored pattern (its size divided by `num_heads`); it is
            required when both are projected.
        value_dim: Size of each head of the projected patterns. Defaults to
            `None`: inferred from static projected patterns, else `key_dim`.
        output_dim: Size of the output projection. Defaults to `None`, the
            state pattern size.
        beta: Inverse temperature of the softmax. Defaults to `None`,
            `1 / sqrt(key_dim)`.
        max_update_steps: Number of associations computed, the last of which
            reads out the values. Defaults to 1 (attention).
        update_tolerance: Updates stop once the change of every state
            pattern is below this norm. Defaults to `1e-4`.
        normalize_state: Layer-normalize the state patterns before their
            projection. Defaults to `True`.
        normalize_stored: Layer-normalize the stored patterns before their
            projection. Defaults to `True`.
        normalize_projection: Layer-normalize the projected patterns (the
            values input) before their projection. Defaults to `True`.
        static_state: Use the state patterns unprojected, split into heads.
            Defaults to `False`.
        static_stored: Use the stored patterns unprojected. Defaults to
            `False`.
        static_projection: Use the projected patterns unprojected. Defaults
            to `False`.
        use_output_projection: Map the concatenated heads to `output_dim`
            with a trainable projection. Without it the output has
            `num_heads * value_dim` features. Defaults to `True`.
        dropout: Dropout rate on the association matrix during training.
            Defaults to 0.
        use_bias: Add biases to the projections. Defaults to `True`.
        kernel_initializer: Initializer of the projection kernels. Defaults
            to `"glorot_uniform"`.
        bias_initializer: Initializer of the projection biases. Defaults to
            `"zeros"`.
        seed: Seed of the dropout. Defaults to `None`.
        **kwargs: Base layer arguments, such as `name` and `dtype`.

    Call arguments:
        state: State patterns `(batch, T, d_state)`, or `(T, d_state)` shared
            by every example.
        stored: Stored patterns `(batch, S, d_stored)`, or `(S, d_stored)`
            shared by every example. One of `state` and `stored` must have
            a batch axis.
        projection: Projected patterns (values) with the same leading axes
            as `stored`. Defaults to `None`, which uses `stored`.
        stored_mask: Boolean `(batch, S)` or `(S,)`; `False` hides a stored
            pattern. Defaults to `None`.
        association_mask: Boolean `(batch, T, S)`; `False` hides a stored
            pattern from one state pattern. Defaults to `None`.
        return_association: Also return the association matrix
            `(batch, num_heads, T, S)` of the last step. Defaults to
            `False`.
        training: Whether dropout is active.

    Returns:
        The retrieved patterns `(batch, T, output_dim)`, and the association
        matrix when `return_association` is set.

    Example:

    >>> import numpy as np
    >>> layer = Hopfield(num_heads=2, key_dim=8)
    >>> state = np.random.rand(4, 3, 16).astype("float32")
    >>> stored = np.random.rand(4, 10, 16).astype("float32")
    >>> layer(state, stored).shape
    (4, 3, 16)

    Note:
        The number of update steps is decided per call from the slowest
        state pattern, and gradients flow through every step. Static
        patterns need a size divisible by `num_heads`. With a large
        `beta`, a state between several equally close stored patterns is
        an unstable fixed point, so each further update amplifies float32
        rounding and different backends (XLA, TF kernels) drift apart.

    References:
        Ramsauer et al. (2020). Hopfield Networks is All You Need.
        https://arxiv.org/abs/2008.02217
    """

    def __init__(
        self,
        num_heads=1,
        key_dim=None,
        value_dim=None,
        output_dim=None,
        beta=None,
        max_update_steps=1,
        update_tolerance=1e-4,
        normalize_state=True,
        normalize_stored=True,
        normalize_projection=True,
        static_state=False,
        static_stored=False,
        static_projection=False,
        use_output_projection=True,
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_positive_int("num_heads", num_heads)
        _check_positive_int("key_dim", key_dim, allow_none=True)
        _check_positive_int("value_dim", value_dim, allow_none=True)
        _check_positive_int("output_dim", output_dim, allow_none=True)
        _check_positive_int("max_update_steps", max_update_steps)
        if beta is not None and not (isinstance(beta, (int, float))
                                     and beta > 0):
            raise ValueError(
                f"`beta` must be a positive number or None. Received: "
                f"beta={beta!r}"
            )
        if not update_tolerance >= 0:
            raise ValueError(
                "`update_tolerance` must be >= 0. Received: "
                f"update_tolerance={update_tolerance!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"`dropout` must be in [0, 1). Received: dropout={dropout!r}"
            )
        if key_dim is None and not (static_state or static_stored):
            raise ValueError(
                "`key_dim` is required unless the state or stored patterns "
                "are static (their size then sets it). Received: "
                "key_dim=None"
            )
        if output_dim is not None and not use_output_projection:
            raise ValueError(
                "`output_dim` sets the size of the output projection, so it "
                "needs `use_output_projection=True`. Received: "
                f"output_dim={output_dim!r}"
            )
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.output_dim = output_dim
        self.beta = None if beta is None else float(beta)
        self.max_update_steps = max_update_steps
        self.update_tolerance = float(update_tolerance)
        self.normalize_state = bool(normalize_state)
        self.normalize_stored = bool(normalize_stored)
        self.normalize_projection = bool(normalize_projection)
        self.static_state = bool(static_state)
        self.static_stored = bool(static_stored)
        self.static_projection = bool(static_projection)
        self.use_output_projection = bool(use_output_projection)
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = seed

    # --- build --------------------------------------------------------------

    def _static_head_size(self, argument, size):
        if size is None or size % self.num_heads:
            raise ValueError(
                f"Static {argument} patterns are split into {self.num_heads} "
                f"heads, so their size must be known and divisible by "
                f"`num_heads`. Received: size={size}"
            )
        return size // self.num_heads

    def _resolve_dims(self, state_shape, stored_shape, projection_shape):
        key_dim = self.key_dim
        for argument, static, shape in (
            ("state", self.static_state, state_shape),
            ("stored", self.static_stored, stored_shape),
        ):
            if not static:
                continue
            size = self._static_head_size(argument, shape[-1])
            if key_dim is not None and size != key_dim:
                raise ValueError(
                    f"Static {argument} patterns of size {shape[-1]} give "
                    f"{size} features per head, but `key_dim` is {key_dim}. "
                    "Make them agree, or project the patterns. Received: "
                    f"{argument}_shape={tuple(shape)}"
                )
            key_dim = size
        value_dim = self.value_dim
        if self.static_projection:
            size = self._static_head_size("projected", projection_shape[-1])
            if value_dim is not None and size != value_dim:
                raise ValueError(
                    f"Static projected patterns give {size} features per "
                    f"head, but `value_dim` is {value_dim}. Received: "
                    f"projection_shape={tuple(projection_shape)}"
                )
            value_dim = size
        return key_dim, value_dim or key_dim

    def _einsum_dense(self, rank, heads_dim, name):
        # Projects (..., d) to (..., heads, head_dim), as MultiHeadAttention.
        if rank == 3:
            equation, output_shape = "abc,cde->abde", (None, self.num_heads,
                                                       heads_dim)
        else:
            equation, output_shape = "ac,cde->ade", (self.num_heads,
                                                     heads_dim)
        return keras.layers.EinsumDense(
            equation,
            output_shape=output_shape,
            bias_axes="de" if self.use_bias else None,
            kernel_initializer=self._clone_initializer(
                self.kernel_initializer),
            bias_initializer=self._clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    @staticmethod
    def _clone_initializer(initializer):
        # A shared stateless initializer instance would repeat its values.
        return initializer.__class__.from_config(initializer.get_config())

    def _layer_norm(self, name, shape):
        layer = keras.layers.LayerNormalization(
            epsilon=_LAYER_NORM_EPSILON, dtype=self.dtype_policy, name=name)
        layer.build(shape)
        return layer

    def build(self, state_shape, stored_shape, projection_shape=None):
        projection_shape = projection_shape or stored_shape
        state_rank, stored_rank = len(state_shape), len(stored_shape)
        if state_rank not in (2, 3) or stored_rank not in (2, 3):
            raise ValueError(
                "State and stored patterns must be (batch, length, features) "
                "or, when shared by the batch, (length, features). Received: "
                f"state_shape={tuple(state_shape)}, "
                f"stored_shape={tuple(stored_shape)}"
            )
        if state_rank == 2 and stored_rank == 2:
            raise ValueError(
                "At least one of the state and stored patterns needs a batch "
                f"axis. Received: state_shape={tuple(state_shape)}, "
                f"stored_shape={tuple(stored_shape)}"
            )
        if len(projection_shape) != stored_rank or (
            projection_shape[-2] is not None and stored_shape[-2] is not None
            and projection_shape[-2] != stored_shape[-2]
        ):
            raise ValueError(
                "Projected patterns must have the same rank and length as "
                "the stored patterns. Received: "
                f"stored_shape={tuple(stored_shape)}, "
                f"projection_shape={tuple(projection_shape)}"
            )
        self._key_dim, self._value_dim = self._resolve_dims(
            state_shape, stored_shape, projection_shape)
        self._state_rank, self._stored_rank = state_rank, stored_rank
        if self.beta is None:
            self._beta = 1.0 / math.sqrt(float(self._key_dim))
        else:
            self._beta = self.beta

        self._state_norm = self._stored_norm = self._projection_norm = None
        if self.normalize_state:
            self._state_norm = self._layer_norm("state_norm", state_shape)
        if self.normalize_stored:
            self._stored_norm = self._layer_norm("stored_norm", stored_shape)
        if self.normalize_projection:
            self._projection_norm = self._layer_norm("projection_norm",
                                                     projection_shape)

        # Same names and creation order as MultiHeadAttention's weights.
        self._query_dense = self._key_dense = self._value_dense = None
        if not self.static_state:
            self._query_dense = self._einsum_dense(state_rank, self._key_dim,
                                                   "query")
            self._query_dense.build(state_shape)
        if not self.static_stored:
            self._key_dense = self._einsum_dense(stored_rank, self._key_dim,
                                                 "key")
            self._key_dense.build(stored_shape)
        if not self.static_projection:
            self._value_dense = self._einsum_dense(
                stored_rank, self._value_dim, "value")
            self._value_dense.build(projection_shape)
        self._output_dense = None
        self.output_size = self.num_heads * self._value_dim
        if self.use_output_projection:
            output_dim = self.output_dim or state_shape[-1]
            self.output_size = output_dim
            self._output_dense = keras.layers.EinsumDense(
                "abcd,cde->abe",
                output_shape=(None, output_dim),
                bias_axes="e" if self.use_bias else None,
                kernel_initializer=self._clone_initializer(
                    self.kernel_initializer),
                bias_initializer=self._clone_initializer(
                    self.bias_initializer),
                dtype=self.dtype_policy,
                name="attention_output",
            )
            self._output_dense.build(
                (None, None, self.num_heads, self._value_dim))
        self._softmax = keras.layers.Softmax(axis=-1,
                                             dtype=self.dtype_policy)
        self._dropout_layer = keras.layers.Dropout(
            self.dropout, seed=self.seed, dtype=self.dtype_policy)

    @property
    def query_dense(self):
        """The state pattern projection `W_Q`, `None` when static."""
        return self._query_dense

    @property
    def key_dense(self):
        """The stored pattern projection `W_K`, `None` when static."""
        return self._key_dense

    @property
    def value_dense(self):
        """The projected pattern projection `W_V`, `None` when static."""
        return self._value_dense

    @property
    def output_dense(self):
        """The output projection, `None` without `use_output_projection`."""
        return self._output_dense

    # --- call ---------------------------------------------------------------

    def _split_heads(self, patterns, head_dim):
        # (..., heads * head_dim) -> (..., heads, head_dim)
        leading = tuple(ops.shape(patterns)[:-1])
        return ops.reshape(patterns, leading + (self.num_heads, head_dim))

    def _prepare(self, patterns, norm, dense, head_dim):
        if norm is not None:
            patterns = norm(patterns)
        if dense is not None:
            return dense(patterns)
        return self._split_heads(patterns, head_dim)

    @staticmethod
    def _axes(patterns, length_axis):
        # Einsum axes: b batch, t state, s stored, h head, d feature.
        batch = "b" if len(patterns.shape) == 4 else ""
        return f"{batch}{length_axis}hd"

    def _read(self, association, patterns):
        # (batch, heads, T, S) x (batch, S, heads, d) -> (batch, T, heads, d)
        return ops.einsum(f"bhts,{self._axes(patterns, 's')}->bthd",
                          association, patterns)

    def _associate(self, query, key, mask):
        equation = f"{self._axes(query, 't')},{self._axes(key, 's')}->bhts"
        # scores: (batch, heads, T, S)
        scores = ops.einsum(equation,
                            ops.multiply(query, ops.cast(self._beta,
                                                         query.dtype)),
                            key)
        return self._softmax(scores, mask=mask)

    def _combined_mask(self, stored_mask, association_mask):
        mask = None
        if stored_mask is not None:
            stored_mask = ops.cast(stored_mask, "bool")
            # (batch, S) or (S,) -> (batch, 1, 1, S)
            if len(stored_mask.shape) == 1:
                stored_mask = stored_mask[None, None, None, :]
            else:
                stored_mask = stored_mask[:, None, None, :]
            mask = stored_mask
        if association_mask is not None:
            # (batch, T, S) -> (batch, 1, T, S)
            association_mask = ops.cast(association_mask, "bool")[:, None]
            mask = association_mask if mask is None else ops.logical_and(
                mask, association_mask)
        return mask

    def _update_state(self, query, key, mask):
        """Run up to `max_update_steps - 1` updates of `query` in key space."""
        tolerance = ops.cast(self.update_tolerance, query.dtype)
        if self._state_rank == 2:
            # A shared state becomes per-example once it is updated.
            query = ops.broadcast_to(
                query[None], (ops.shape(key)[0],) + tuple(ops.shape(query)))
        # done: (batch, T, heads), True once a state pattern has converged.
        done = ops.zeros(ops.shape(query)[:-1], dtype="bool")

        def condition(step, query, done):
            return ops.logical_and(step < self.max_update_steps - 1,
                                   ops.logical_not(ops.all(done)))

        def body(step, query, done):
            association = self._associate(query, key, mask)
            # updated: (batch, T, heads, key_dim)
            updated = self._read(association, key)
            change = ops.sqrt(ops.sum(ops.square(updated - query), axis=-1))
            query = ops.where(done[..., None], query, updated)
            done = ops.logical_or(done, change < tolerance)
            return step + 1, query, done

        _, query, _ = ops.while_loop(condition, body, (0, query, done))
        return query

    def call(self, state, stored, projection=None, stored_mask=None,
             association_mask=None, return_association=False,
             training=None):
        if projection is None:
            projection = stored
        # query: (batch, T, heads, key_dim) or (T, heads, key_dim)
        query = self._prepare(state, self._state_norm, self._query_dense,
                              self._key_dim)
        # key: (batch, S, heads, key_dim) or (S, heads, key_dim)
        key = self._prepare(stored, self._stored_norm, self._key_dense,
                            self._key_dim)
        # value: (batch, S, heads, value_dim) or (S, heads, value_dim)
        value = self._prepare(projection, self._projection_norm,
                              self._value_dense, self._value_dim)
        mask = self._combined_mask(stored_mask, association_mask)

        if self.max_update_steps > 1:
            query = self._update_state(query, key, mask)
        # association: (batch, heads, T, S)
        association = self._associate(query, key, mask)
        weights = self._dropout_layer(association, training=training)
        # retrieved: (batch, T, heads, value_dim)
        retrieved = self._read(weights, value)
        if self._output_dense is not None:
            # output: (batch, T, output_dim)
            output = self._output_dense(retrieved)
        else:
            # output: (batch, T, heads * value_dim)
            leading = tuple(ops.shape(retrieved)[:-2])
            output = ops.reshape(retrieved, leading + (self.output_size,))
        if return_association:
            return output, association
        return output

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "output_dim": self.output_dim,
            "beta": self.beta,
            "max_update_steps": self.max_update_steps,
            "update_tolerance": self.update_tolerance,
            "normalize_state": self.normalize_state,
            "normalize_stored": self.normalize_stored,
            "normalize_projection": self.normalize_projection,
            "static_state": self.static_state,
            "static_stored": self.static_stored,
            "static_projection": self.static_projection,
            "use_output_projection": self.use_output_projection,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(
                self.bias_initializer),
            "seed": self.seed,
        })
        return config


# Constructor arguments of `Hopfield` that the wrapping layers pass on.
_HOPFIELD_ARGUMENTS = (
    "num_heads", "key_dim", "value_dim", "output_dim", "beta",
    "max_update_steps", "update_tolerance", "normalize_state",
    "normalize_stored", "normalize_projection", "static_state",
    "static_stored", "static_projection", "use_output_projection",
    "dropout", "use_bias", "kernel_initializer", "bias_initializer", "seed",
)


def _split_hopfield_arguments(kwargs):
    options = {key: kwargs.pop(key) for key in list(kwargs)
               if key in _HOPFIELD_ARGUMENTS}
    return options, kwargs


def _hopfield_config(hopfield):
    config = hopfield.get_config()
    return {key: config[key] for key in _HOPFIELD_ARGUMENTS}


@keras.saving.register_keras_serializable(package="zoo")
class HopfieldPooling(keras.layers.Layer):
    """Pool a set or sequence with trainable state patterns (queries).

    The layer stores its input elements as the patterns of a `Hopfield`
    association and retrieves from `num_queries` trainable state patterns,
    so each query returns a softmax-weighted sum of the (projected)
    elements. Without position information in the elements the result does
    not depend on their order, which makes the layer a pooling for sets.

    Args:
        num_queries: Number of trainable state patterns. Defaults to 1.
        query_dim: Size of each state pattern before its projection.
            Defaults to `None`, the element size.
        flatten: Return `(batch, num_queries * output_dim)` instead of
            `(batch, num_queries, output_dim)`. Defaults to `True`.
        query_initializer: Initializer of the state patterns. Defaults to
            `"glorot_uniform"`.
        **kwargs: `Hopfield` arguments (`num_heads`, `key_dim`, `beta`,
            `max_update_steps`, normalization and static options,
            `dropout`, ...), each with `Hopfield`'s default, and base layer
            arguments such as `name`. `key_dim` is required unless the
            state or stored patterns are static.

    Call arguments:
        inputs: Elements `(batch, S, features)`.
        mask: Boolean `(batch, S)`; `False` marks padding. Keras passes the
            mask of a `Masking` or `Embedding(mask_zero=True)` input.
        training: Whether dropout is active.

    Returns:
        The pooled vectors, `(batch, num_queries * output_dim)` when
        `flatten`, else `(batch, num_queries, output_dim)`.

    Example:

    >>> import numpy as np
    >>> pooling = HopfieldPooling(num_queries=2, num_heads=2, key_dim=4)
    >>> sets = np.random.rand(8, 20, 3).astype("float32")
    >>> pooling(sets).shape
    (8, 6)

    References:
        Ramsauer et al. (2020). Hopfield Networks is All You Need.
        https://arxiv.org/abs/2008.02217
    """

    def __init__(self, num_queries=1, query_dim=None, flatten=True,
                 query_initializer="glorot_uniform", **kwargs):
        options, kwargs = _split_hopfield_arguments(kwargs)
        super().__init__(**kwargs)
        _check_positive_int("num_queries", num_queries)
        _check_positive_int("query_dim", query_dim, allow_none=True)
        self.num_queries = num_queries
        self.query_dim = query_dim
        self.flatten = bool(flatten)
        self.query_initializer = keras.initializers.get(query_initializer)
        self.hopfield = Hopfield(dtype=self.dtype_policy, name="hopfield",
                                 **options)
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                "HopfieldPooling expects elements of shape (batch, length, "
                f"features). Received: input_shape={tuple(input_shape)}"
            )
        query_dim = self.query_dim or input_shape[-1]
        self.queries = self.add_weight(
            name="queries", shape=(self.num_queries, query_dim),
            initializer=self.query_initializer)
        self.hopfield.build((self.num_queries, query_dim), input_shape)

    def call(self, inputs, mask=None, training=None):
        # pooled: (batch, num_queries, output_dim)
        pooled = self.hopfield(ops.cast(self.queries, inputs.dtype), inputs,
                               stored_mask=mask, training=training)
        if not self.flatten:
            return pooled
        # (batch, num_queries * output_dim)
        return ops.reshape(
            pooled, (-1, self.num_queries * self.hopfield.output_size))

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_queries": self.num_queries,
            "query_dim": self.query_dim,
            "flatten": self.flatten,
            "query_initializer": keras.initializers.serialize(
                self.query_initializer),
            **_hopfield_config(self.hopfield),
        })
        return config


@keras.saving.register_keras_serializable(package="zoo")
class HopfieldLayer(keras.layers.Layer):
    """Look inputs up in trainable stored patterns.

    The inputs are the state patterns of a `Hopfield` association whose
    stored patterns (keys) and, with `separate_values`, projected patterns
    (values) are weights of the layer, learned by gradient descent or set
    to data (`layer.stored_patterns.assign(...)`). By default the stored
    and projected patterns are static: they are weights already, so a
    further projection would add nothing.

    Args:
        num_patterns: Number of stored patterns.
        pattern_dim: Size of each stored pattern. Defaults to `None`:
            `num_heads * key_dim` when `key_dim` is given, else the input
            size.
        value_pattern_dim: Size of each value pattern. Defaults to `None`:
            `num_heads * value_dim` when `value_dim` is given, else
            `pattern_dim`.
        separate_values: Learn value patterns apart from the stored
            patterns; otherwise the stored patterns are also the values.
            Defaults to `True`.
        pattern_initializer: Initializer of the stored and value patterns.
            Defaults to `"glorot_uniform"`.
        **kwargs: `Hopfield` arguments, each with `Hopfield`'s default
            except `static_stored=True` and `static_projection=True`, and
            base layer arguments such as `name` and `trainable`.

    Call arguments:
        inputs: State patterns `(batch, features)` or `(batch, T,
            features)`.
        training: Whether dropout is active.

    Returns:
        The retrieved patterns, `(batch, output_dim)` or `(batch, T,
        output_dim)` like the inputs.

    Example:

    >>> import numpy as np
    >>> lookup = HopfieldLayer(num_patterns=32, key_dim=16, output_dim=10)
    >>> lookup(np.random.rand(4, 64).astype("float32")).shape
    (4, 10)

    References:
        Ramsauer et al. (2020). Hopfield Networks is All You Need.
        https://arxiv.org/abs/2008.02217
    """

    def __init__(self, num_patterns, pattern_dim=None, value_pattern_dim=None,
                 separate_values=True, pattern_initializer="glorot_uniform",
                 **kwargs):
        options, kwargs = _split_hopfield_arguments(kwargs)
        options.setdefault("static_stored", True)
        options.setdefault("static_projection", True)
        super().__init__(**kwargs)
        _check_positive_int("num_patterns", num_patterns)
        _check_positive_int("pattern_dim", pattern_dim, allow_none=True)
        _check_positive_int("value_pattern_dim", value_pattern_dim,
                            allow_none=True)
        if value_pattern_dim is not None and not separate_values:
            raise ValueError(
                "`value_pattern_dim` sizes the separate value patterns, so "
                "it needs `separate_values=True`. Received: "
                f"value_pattern_dim={value_pattern_dim!r}"
            )
        self.num_patterns = num_patterns
        self.pattern_dim = pattern_dim
        self.value_pattern_dim = value_pattern_dim
        self.separate_values = bool(separate_values)
        self.pattern_initializer = keras.initializers.get(
            pattern_initializer)
        self.hopfield = Hopfield(dtype=self.dtype_policy, name="hopfield",
                                 **options)
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) not in (2, 3):
            raise ValueError(
                "HopfieldLayer expects inputs of shape (batch, features) or "
                f"(batch, length, features). Received: "
                f"input_shape={tuple(input_shape)}"
            )
        hopfield = self.hopfield
        pattern_dim = self.pattern_dim
        if pattern_dim is None:
            pattern_dim = (hopfield.num_heads * hopfield.key_dim
                           if hopfield.key_dim else input_shape[-1])
        self.stored_patterns = self.add_weight(
            name="stored_patterns", shape=(self.num_patterns, pattern_dim),
            initializer=self.pattern_initializer)
        self.value_patterns = None
        value_shape = None
        if self.separate_values:
            value_dim = self.value_pattern_dim
            if value_dim is None:
                value_dim = (hopfield.num_heads * hopfield.value_dim
                             if hopfield.value_dim else pattern_dim)
            self.value_patterns = self.add_weight(
                name="value_patterns", shape=(self.num_patterns, value_dim),
                initializer=self._clone(self.pattern_initializer))
            value_shape = (self.num_patterns, value_dim)
        state_shape = (input_shape[0], 1, input_shape[-1]) if len(
            input_shape) == 2 else tuple(input_shape)
        hopfield.build(state_shape, (self.num_patterns, pattern_dim),
                       value_shape)

    @staticmethod
    def _clone(initializer):
        return initializer.__class__.from_config(initializer.get_config())

    def call(self, inputs, training=None):
        squeeze = len(inputs.shape) == 2
        if squeeze:
            # (batch, features) -> (batch, 1, features)
            inputs = inputs[:, None, :]
        stored = ops.cast(self.stored_patterns, inputs.dtype)
        values = None
        if self.value_patterns is not None:
            values = ops.cast(self.value_patterns, inputs.dtype)
        # retrieved: (batch, T, output_dim)
        retrieved = self.hopfield(inputs, stored, values, training=training)
        return retrieved[:, 0, :] if squeeze else retrieved

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_patterns": self.num_patterns,
            "pattern_dim": self.pattern_dim,
            "value_pattern_dim": self.value_pattern_dim,
            "separate_values": self.separate_values,
            "pattern_initializer": keras.initializers.serialize(
                self.pattern_initializer),
            **_hopfield_config(self.hopfield),
        })
        return config
