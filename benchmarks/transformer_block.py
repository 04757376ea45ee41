"""Time `TransformerBlock` against the same block built from Keras layers.

The reference block is a functional model of
`keras.layers.MultiHeadAttention`, `Dense`, `Dropout` and `LayerNormalization`
with the same shapes, parameter count and post-norm wiring. Each measurement
is one forward and backward pass (loss, gradients of every weight) inside a
`tf.function`, on the same batch. The two blocks alternate over several
rounds, swapping which runs first. Each round gives a paired ratio
(`TransformerBlock` over reference), so a load change on a shared machine
that lasts about one round moves one ratio, not the result. The script
prints the median time of each block and the median of the paired ratios,
which should be at most 1.1.

Usage:
    .venv/bin/python benchmarks/transformer_block.py [--batch 32]
        [--steps 64] [--hidden-dim 128] [--heads 8] [--rounds 15]
        [--iterations 10]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from zoo.layers import TransformerBlock  # noqa: E402

MAX_RATIO = 1.1


def reference_block(hidden_dim, num_heads, intermediate_dim, dropout):
    """Return the post-norm block as a functional model of Keras layers."""
    inputs = keras.Input((None, hidden_dim))
    padding_mask = keras.Input((None,), dtype="bool")
    attention = keras.layers.MultiHeadAttention(
        num_heads, hidden_dim // num_heads)(inputs, inputs,
                                            value_mask=padding_mask)
    attention = keras.layers.Dropout(dropout)(attention)
    x = keras.layers.LayerNormalization(epsilon=1e-5)(
        keras.layers.Add()([inputs, attention]))
    feedforward = keras.layers.Dense(intermediate_dim, activation="relu")(x)
    feedforward = keras.layers.Dense(hidden_dim)(feedforward)
    feedforward = keras.layers.Dropout(dropout)(feedforward)
    outputs = keras.layers.LayerNormalization(epsilon=1e-5)(
        keras.layers.Add()([x, feedforward]))
    return keras.Model([inputs, padding_mask], outputs)


def zoo_block(hidden_dim, num_heads, intermediate_dim, dropout):
    """Return `TransformerBlock` wrapped in a model of the same signature."""
    inputs = keras.Input((None, hidden_dim))
    padding_mask = keras.Input((None,), dtype="bool")
    outputs = TransformerBlock(hidden_dim, num_heads,
                               intermediate_dim=intermediate_dim,
                               dropout=dropout)(inputs,
                                                padding_mask=padding_mask)
    return keras.Model([inputs, padding_mask], outputs)


def training_step(model):
    """Return a compiled forward-and-backward step of `model`."""

    @tf.function
    def step(x, mask):
        with tf.GradientTape() as tape:
            y = model([x, mask], training=True)
            loss = tf.reduce_mean(tf.square(y))
        return tape.gradient(loss, model.trainable_variables)

    return step


def time_step(step, x, mask, iterations):
    """Return the mean seconds of one call of `step` over `iterations`."""
    started = time.perf_counter()
    for _ in range(iterations):
        gradients = step(x, mask)
    # Reading a value waits for the last step to finish.
    float(tf.reduce_sum(gradients[0]))
    return (time.perf_counter() - started) / iterations


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--intermediate-dim", type=int, default=512)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(args.batch, args.steps,
                                     args.hidden_dim)).astype("float32"))
    lengths = rng.integers(args.steps // 2, args.steps + 1, args.batch)
    mask = tf.constant(np.arange(args.steps)[None, :] < lengths[:, None])
    settings = (args.hidden_dim, args.heads, args.intermediate_dim,
                args.dropout)
    ours = zoo_block(*settings)
    reference = reference_block(*settings)
    if ours.count_params() != reference.count_params():
        raise SystemExit(
            f"The blocks differ: {ours.count_params()} and "
            f"{reference.count_params()} parameters.")

    steps = {"TransformerBlock": training_step(ours),
             "MultiHeadAttention+Dense": training_step(reference)}
    for step in steps.values():  # trace and warm up
        time_step(step, x, mask, 3)
    times = {name: [] for name in steps}
    order = list(steps)
    for _ in range(args.rounds):
        for name in order:
            times[name].append(time_step(steps[name], x, mask,
                                         args.iterations))
        order.reverse()  # neither block always runs first

    medians = {name: statistics.median(values)
               for name, values in times.items()}
    print(f"batch={args.batch} steps={args.steps} "
          f"hidden_dim={args.hidden_dim} heads={args.heads} "
          f"intermediate_dim={args.intermediate_dim} "
          f"parameters={ours.count_params()} device="
          f"{'GPU' if tf.config.list_logical_devices('GPU') else 'CPU'}")
    for name, seconds in medians.items():
        print(f"{name:>26}: {seconds * 1e3:8.2f} ms per forward+backward")
    ratio = statistics.median(
        ours_time / reference_time for ours_time, reference_time in zip(
            times["TransformerBlock"], times["MultiHeadAttention+Dense"]))
    verdict = "within" if ratio <= MAX_RATIO else "above"
    print(f"median paired ratio TransformerBlock / reference: {ratio:.3f} "
          f"({verdict} the limit {MAX_RATIO})")
    return 0 if ratio <= MAX_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
