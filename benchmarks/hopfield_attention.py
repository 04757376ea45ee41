"""Time `Hopfield` (one update) against `keras.layers.MultiHeadAttention`.

Both layers get the same sizes and the same weights, without
normalization, and are timed on a forward and backward pass (loss, then
gradients of every weight and of the inputs) compiled with `tf.function`.
Measurements alternate between the two layers to spread machine noise
over both, and the ratio of median times, Hopfield over
MultiHeadAttention, is printed. Target: at most 1.2.

    python benchmarks/hopfield_attention.py [--batch 32] [--length 128]
        [--features 256] [--heads 8] [--key-dim 32] [--repeats 30]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_step(layer, call):
    import tensorflow as tf

    @tf.function
    def step(query, stored):
        with tf.GradientTape() as tape:
            tape.watch([query, stored])
            loss = tf.reduce_sum(tf.square(call(layer, query, stored)))
        return tape.gradient(loss, layer.trainable_weights + [query, stored])

    return step


def time_once(step, query, stored, calls):
    started = time.perf_counter()
    for _ in range(calls):
        gradients = step(query, stored)
    # Reading one value waits for the last step to finish.
    float(gradients[0].numpy().ravel()[0])
    return (time.perf_counter() - started) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128,
                        help="state and stored patterns per example")
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--key-dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30,
                        help="alternating measurements per layer")
    parser.add_argument("--calls", type=int, default=5,
                        help="steps per measurement")
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from zoo.layers.hopfield import Hopfield

    rng = np.random.default_rng(0)
    shape = (args.batch, args.length, args.features)
    query = tf.constant(rng.normal(size=shape).astype("float32"))
    stored = tf.constant(rng.normal(size=shape).astype("float32"))
    attention = keras.layers.MultiHeadAttention(args.heads, args.key_dim)
    hopfield = Hopfield(num_heads=args.heads, key_dim=args.key_dim,
                        normalize_state=False, normalize_stored=False,
                        normalize_projection=False)
    attention(query, stored)
    hopfield(query, stored)
    hopfield.set_weights(attention.get_weights())
    steps = {
        "MultiHeadAttention": make_step(
            attention, lambda layer, q, s: layer(q, s)),
        "Hopfield": make_step(hopfield, lambda layer, q, s: layer(q, s)),
    }
    difference = np.abs(np.asarray(hopfield(query, stored))
                        - np.asarray(attention(query, stored))).max()
    for step in steps.values():
        time_once(step, query, stored, 3)  # trace and warm up

    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            times[name].append(time_once(step, query, stored, args.calls))
    medians = {name: statistics.median(values)
               for name, values in times.items()}
    print(f"sizes: batch {args.batch}, length {args.length}, features "
          f"{args.features}, heads {args.heads}, key_dim {args.key_dim}")
    print(f"largest output difference: {difference:.2e}")
    for name, median in medians.items():
        print(f"{name}: {median * 1e3:.2f} ms per forward+backward step")
    ratio = medians["Hopfield"] / medians["MultiHeadAttention"]
    print(f"ratio Hopfield / MultiHeadAttention: {ratio:.3f} "
          f"(target <= 1.2: {'met' if ratio <= 1.2 else 'missed'})")


if __name__ == "__main__":
    main()
