"""Time `zoo`'s trainer against a hand-written Keras script, in one run.

Both train the same CNN (the registered `cnn` defaults) on the same digits
split for the same epochs and batch size, then evaluate on the test split.
The zoo run also writes its run folder (checkpoint, CSV, curves PNG,
metrics). Runs alternate to spread machine noise over both, and the ratio
of medians is printed. Target: at most 1.10.

    python benchmarks/trainer_overhead.py [--epochs 20] [--repeats 3]
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def hand_written(epochs, batch_size, seed):
    import keras
    import tensorflow as tf

    from zoo import datasets

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    bundle = datasets.load("digits")
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for channels in (32, 64):
        for _ in range(2):
            x = keras.layers.Conv2D(channels, 3, padding="same",
                                    activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.Dropout(0.25)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    x = keras.layers.Dropout(0.25)(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-3),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    train = tf.data.Dataset.from_tensor_slices(
        (bundle.train.x, bundle.train.y)).shuffle(
        len(bundle.train), seed=seed).batch(batch_size).prefetch(2)
    validation = tf.data.Dataset.from_tensor_slices(
        (bundle.validation.x, bundle.validation.y)).batch(batch_size)
    test = tf.data.Dataset.from_tensor_slices(
        (bundle.test.x, bundle.test.y)).batch(batch_size)
    model.fit(train, validation_data=validation, epochs=epochs, verbose=0,
              shuffle=False)
    return model.evaluate(test, verbose=0, return_dict=True)["accuracy"]


def through_zoo(epochs, batch_size, seed, folder):
    from training import trainer

    result = trainer.train("cnn", epochs=epochs, batch_size=batch_size,
                           seed=seed, run_dir=folder, patience=epochs)
    return result.metrics["test_accuracy"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    # Warm up imports and kernels once so neither side pays for them.
    hand_written(1, args.batch_size, 0)
    zoo_times, keras_times = [], []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            zoo_accuracy = through_zoo(args.epochs, args.batch_size, repeat,
                                       folder)
            zoo_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        keras_accuracy = hand_written(args.epochs, args.batch_size, repeat)
        keras_times.append(time.perf_counter() - started)
        print(f"repeat {repeat}: zoo {zoo_times[-1]:.2f}s "
              f"(accuracy {zoo_accuracy:.4f}), keras {keras_times[-1]:.2f}s "
              f"(accuracy {keras_accuracy:.4f})")
    ratio = statistics.median(zoo_times) / statistics.median(keras_times)
    print(f"zoo / hand-written Keras time ratio: {ratio:.3f} "
          f"(target <= 1.10, {args.epochs} epochs, batch {args.batch_size})")


if __name__ == "__main__":
    main()
