"""Time per epoch of the CNN on digits with and without augmentation.

Trains the registered `cnn` (default hyperparameters) on the embedded
digits, once with the default image augmentation spec as a parallel,
prefetched `tf.data` map and once without, alternating the two so that
load on the machine hits both alike. It prints the median epoch time of
each and their ratio, which should stay at or below 1.3, because the
augmentation of the next batches runs while the model trains on the
current one.

Usage:
    python benchmarks/augment_overhead.py [--epochs 6] [--rounds 2]
        [--spec rotate:10,translate:0.1,noise:0.02]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

TARGET_RATIO = 1.3


def epoch_times(augment_spec, epochs, seed=0):
    """Train the CNN for `epochs` and return the time of each epoch."""
    import keras

    import zoo
    from training import augment
    from zoo import datasets

    bundle = datasets.load("digits")
    pipeline = augment.build_pipeline(augment_spec, seed=seed) \
        if augment_spec else None
    train = datasets.as_dataset(bundle.train, 32, shuffle=True, seed=seed,
                                augment=pipeline)
    keras.utils.set_random_seed(seed)
    model = zoo.get_model("cnn")
    model.compile(keras.optimizers.Adam(1e-3),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)

    model.fit(train, epochs=epochs, verbose=0, callbacks=[Timer()])
    return times


def main(argv=None):
    from training.augment import DEFAULT_IMAGE_SPEC

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6,
                        help="epochs per training run; the first is "
                        "warm-up and not counted (default: 6)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="training runs of each kind, alternated "
                        "(default: 2)")
    parser.add_argument("--spec", default=DEFAULT_IMAGE_SPEC,
                        help=f"augmentation spec (default: "
                        f"{DEFAULT_IMAGE_SPEC})")
    args = parser.parse_args(argv)
    if args.epochs < 2 or args.rounds < 1:
        parser.error("--epochs must be >= 2 and --rounds >= 1")

    plain, augmented = [], []
    for _ in range(args.rounds):
        plain += epoch_times(None, args.epochs)[1:]
        augmented += epoch_times(args.spec, args.epochs)[1:]
    plain_median = statistics.median(plain)
    augmented_median = statistics.median(augmented)
    ratio = augmented_median / plain_median
    print(f"cpu cores: {os.cpu_count()}, load average: "
          f"{os.getloadavg()[0]:.1f}")
    print(f"epoch without augmentation: {plain_median:.3f} s (median of "
          f"{len(plain)})")
    print(f"epoch with {args.spec}: {augmented_median:.3f} s (median of "
          f"{len(augmented)})")
    verdict = "ok" if ratio <= TARGET_RATIO else "over target"
    print(f"ratio: {ratio:.2f} (target <= {TARGET_RATIO}: {verdict})")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
