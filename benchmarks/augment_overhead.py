"""Time per epoch of the CNN on digits with and without augmentation.

Trains two copies of the registered `cnn` (default hyperparameters) on the
embedded digits, one fed through the default image augmentation spec as a
parallel, prefetched `tf.data` map and one fed the plain batches. Epochs
of the two alternate, so each augmented epoch is paired with a plain epoch
run right before it under the same load from other jobs. It prints three
ratios of augmented over plain: the median of the paired epochs (the
figure with a target: at most 1.3), the fastest epochs (best of N, as
`timeit` reports), and the process CPU time per epoch, which counts the
augmentation's work even where the parallel map hides it.

Usage:
    python benchmarks/augment_overhead.py [--pairs 12]
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


def make_run(augment_spec, seed=0):
    """Return a function that trains one more epoch.

    The function returns the epoch's wall-clock and process CPU seconds.
    """
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

    def run_epoch():
        started, cpu_started = time.perf_counter(), time.process_time()
        model.fit(train, epochs=1, verbose=0)
        return (time.perf_counter() - started,
                time.process_time() - cpu_started)

    return run_epoch


def main(argv=None):
    from training.augment import DEFAULT_IMAGE_SPEC

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=12,
                        help="timed epochs of each kind, after one warm-up "
                        "epoch each (default: 12)")
    parser.add_argument("--spec", default=DEFAULT_IMAGE_SPEC,
                        help=f"augmentation spec (default: "
                        f"{DEFAULT_IMAGE_SPEC})")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error(f"--pairs must be >= 1, received {args.pairs}")

    plain_epoch = make_run(None)
    augmented_epoch = make_run(args.spec)
    plain_epoch()
    augmented_epoch()
    plain, augmented = [], []
    for _ in range(args.pairs):
        plain.append(plain_epoch())
        augmented.append(augmented_epoch())
    plain_wall, plain_cpu = zip(*plain)
    augmented_wall, augmented_cpu = zip(*augmented)
    ratio = statistics.median(
        a / p for a, p in zip(augmented_wall, plain_wall))
    best = min(augmented_wall) / min(plain_wall)
    cpu_ratio = statistics.median(augmented_cpu) / statistics.median(
        plain_cpu)
    print(f"cpu cores: {os.cpu_count()}, load average: "
          f"{os.getloadavg()[0]:.1f}")
    print(f"epoch without augmentation: best {min(plain_wall):.3f} s, "
          f"median {statistics.median(plain_wall):.3f} s of {args.pairs}")
    print(f"epoch with {args.spec}: best {min(augmented_wall):.3f} s, "
          f"median {statistics.median(augmented_wall):.3f} s of "
          f"{args.pairs}")
    print(f"best-of-{args.pairs} ratio: {best:.2f}; CPU time ratio: "
          f"{cpu_ratio:.2f}")
    verdict = "ok" if ratio <= TARGET_RATIO else "over target"
    print(f"ratio, median of {args.pairs} paired epochs: {ratio:.2f} "
          f"(target <= {TARGET_RATIO}: {verdict})")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
