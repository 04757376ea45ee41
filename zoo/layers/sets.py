"""Permutation-invariant pooling of sets: Deep Sets and Janossy pooling.

A set arrives as a tensor `(batch, set_size, features)` whose element order
carries no meaning. `SetSumPooling` sums per-element features (Deep Sets,
Zaheer et al. 2017). `KaryJanossyPooling` sums a network applied to every
ordered k-tuple of distinct elements (Murphy et al. 2019), which is exactly
invariant and models interactions among k elements. `JanossyPermutationModel`
applies a sequence model to random orderings: trained with one sampled
permutation per example and step (pi-SGD), it averages several permutations
at prediction.
"""

import itertools
import math

import keras
from keras import ops

from zoo._validation import check_positive_ints


@keras.saving.register_keras_serializable(package="zoo")
class SetSumPooling(keras.layers.Layer):
    """Sum over the set axis: `(batch, set_size, d) -> (batch, d)`.

    Args:
        **kwargs: Base layer arguments.
    """

    def call(self, inputs):
        # [batch, set_size, d] -> [batch, d]
        return ops.sum(inputs, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="zoo")
class KaryJanossyPooling(keras.layers.Layer):
    """k-ary Janossy pooling: sum of an MLP over all ordered k-tuples.

    For a set of n elements, the layer gathers the n!/(n-k)! ordered tuples
    of k distinct elements, concatenates each tuple's features, applies a
    ReLU MLP to it and sums over tuples. Permuting the set permutes the
    tuples, so the sum is exactly invariant (up to floating-point order).

    Args:
        k: Tuple size, from 1 to `set_size`. `k=1` is Deep Sets pooling.
        set_size: Number of elements per set (static, to enumerate tuples).
        hidden_units: Widths of the tuple MLP.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Tensor `(batch, set_size, features)`.

    Returns:
        Tensor `(batch, hidden_units[-1])`.

    References:
        Murphy, Srinivasan, Rao, Ribeiro (2019). Janossy pooling: learning
        deep permutation-invariant functions for variable-size inputs.
        https://arxiv.org/abs/1811.01900
    """

    def __init__(self, k, set_size, hidden_units, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(set_size, int) or set_size < 1:
            raise ValueError(
                "`set_size` must be a positive integer. "
                f"Received: set_size={set_size!r}"
            )
        if not isinstance(k, int) or not 1 <= k <= set_size:
            raise ValueError(
                f"`k` must be an integer from 1 to set_size={set_size}. "
                f"Received: k={k!r}"
            )
        tuples = math.perm(set_size, k)
        if tuples > 5040:
            raise ValueError(
                f"k={k} on sets of {set_size} elements gives {tuples} "
                "ordered tuples, more than the 5040 this layer enumerates. "
                "Use a smaller `k` or the permutation-sampling model."
            )
        check_positive_ints("hidden_units", hidden_units)
        self.k = k
        self.set_size = set_size
        self.hidden_units = list(hidden_units)
        self.tuple_indices = list(
            itertools.permutations(range(set_size), k))
        self.dense_layers = [
            keras.layers.Dense(units, activation="relu",
                               name=f"tuple_dense_{i}")
            for i, units in enumerate(self.hidden_units)
        ]

    def build(self, input_shape):
        if input_shape[1] is not None and input_shape[1] != self.set_size:
            raise ValueError(
                f"Sets must have {self.set_size} elements (set_size), but "
                f"the input shape is {tuple(input_shape)}."
            )
        shape = (input_shape[0], len(self.tuple_indices),
                 self.k * input_shape[2])
        for layer in self.dense_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        features = ops.shape(inputs)[2]
        indices = ops.convert_to_tensor(self.tuple_indices, dtype="int32")
        # [batch, set_size, d] -> [batch, tuples, k, d]
        tuples = ops.take(inputs, indices, axis=1)
        # [batch, tuples, k * d]
        x = ops.reshape(tuples, (batch, len(self.tuple_indices),
                                 self.k * features))
        for layer in self.dense_layers:
            x = layer(x)
        # [batch, tuples, units] -> [batch, units]
        return ops.sum(x, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.hidden_units[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"k": self.k, "set_size": self.set_size,
                       "hidden_units": self.hidden_units})
        return config


def permute_sets(inputs, seed):
    """Return each set of `inputs` in its own random order.

    Args:
        inputs: Tensor `(batch, set_size, features)`.
        seed: Integer or `keras.random.SeedGenerator`.
    """
    shape = ops.shape(inputs)
    if isinstance(seed, int):
        from zoo.layers.bayesian import fixed_random_bits

        # Integer draws give the same orders with and without XLA.
        noise = fixed_random_bits((shape[0], shape[1]), seed)
    else:
        noise = keras.random.uniform((shape[0], shape[1]), seed=seed)
    # [batch, set_size]: a uniformly random permutation per row.
    order = ops.argsort(noise, axis=1)
    return ops.take_along_axis(inputs, order[:, :, None], axis=1)


@keras.saving.register_keras_serializable(package="zoo")
class JanossyPermutationModel(keras.Model):
    """Full Janossy pooling approximated by sampled permutations.

    The permutation-sensitive function is an LSTM read of the set in some
    order followed by a dense head. Training feeds each example in one
    random order per step (pi-SGD), an unbiased estimate of the gradient of
    the average over all orders. Prediction averages `num_permutations`
    orders drawn from fixed seeds, so the same batch gets the same result.

    Args:
        lstm_units: Width of the LSTM.
        head_units: Widths of the ReLU head before the output.
        output_dim: Number of outputs.
        num_permutations: Orders averaged at prediction.
        seed: Base seed of the prediction orders.
        **kwargs: Base model arguments.

    Note: a prediction depends on the batch it is in, because the orders
    are drawn per batch row.

    References:
        Murphy, Srinivasan, Rao, Ribeiro (2019). Janossy pooling.
        https://arxiv.org/abs/1811.01900
    """

    def __init__(self, lstm_units, head_units, output_dim, num_permutations,
                 seed=0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_permutations, int) or num_permutations < 1:
            raise ValueError(
                "`num_permutations` must be a positive integer. "
                f"Received: num_permutations={num_permutations!r}"
            )
        self.lstm_units = lstm_units
        self.head_units = list(head_units)
        self.output_dim = output_dim
        self.num_permutations = num_permutations
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.lstm = keras.layers.LSTM(lstm_units, name="lstm")
        self.head = [keras.layers.Dense(u, activation="relu",
                                        name=f"head_{i}")
                     for i, u in enumerate(self.head_units)]
        self.out = keras.layers.Dense(output_dim, name="predictions")

    def build(self, input_shape):
        self.lstm.build(tuple(input_shape))
        shape = (input_shape[0], self.lstm_units)
        for layer in self.head + [self.out]:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def _read(self, ordered, training):
        x = self.lstm(ordered, training=training)
        for layer in self.head:
            x = layer(x)
        return self.out(x)

    def call(self, inputs, training=None):
        if training:
            return self._read(permute_sets(inputs, self.seed_generator),
                              True)
        return ops.mean(self.predict_permutations(inputs), axis=0)

    def predict_permutations(self, inputs, num_permutations=None, offset=0):
        """Return predictions for several orders, `(orders, batch, out)`;
        order `i` is drawn with seed `seed + offset + i`."""
        count = num_permutations or self.num_permutations
        reads = [self._read(permute_sets(inputs, int(self.seed) + offset + i),
                            False) for i in range(count)]
        # [orders, batch, output_dim]
        return ops.stack(reads, axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update({
            "lstm_units": self.lstm_units,
            "head_units": self.head_units,
            "output_dim": self.output_dim,
            "num_permutations": self.num_permutations,
            "seed": self.seed,
        })
        return config
