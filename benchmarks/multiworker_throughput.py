"""Training throughput of two workers over one, on this machine.

Runs `zoo train cnn --strategy multi-worker` as a cluster of one worker
and as a cluster of two workers on 127.0.0.1. Both use the same global
batch and the same number of intra-op threads per worker. It prints the
training samples per second of each and their ratio. Each run reports
`train_samples_per_second` in its `metrics.json`: samples of all epochs
after the first (which traces the step function) divided by the time of
their steps, excluding validation.

With one thread per worker, two workers have twice the compute of one,
so a ratio of 2.0 would be perfect scaling. What is missing is the cost
of the all-reduce of the gradients over gRPC on every step, plus any
cores the machine lacks: on a 2-core machine shared with other work the
ratio is far below 2.

Usage:
    python benchmarks/multiworker_throughput.py [--epochs 3]
        [--batch-size 64] [--threads-per-worker 1] [--smoke]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from training import distributed  # noqa: E402
SMOKE = ["--set", "filters=[4]", "--set", "dense_units=8",
         "--set", "convs_per_block=1"]


def run_cluster(workers, args, folder):
    """Train on a cluster of `workers` processes; return the chief's metrics.
    """
    run_dir = os.path.join(folder, f"run-{workers}")
    command = [sys.executable, "-m", "zoo", "train", "cnn", "--strategy",
               "multi-worker", "--run-dir", run_dir, "--no-export",
               "--epochs", str(args.epochs), "--batch-size",
               str(args.batch_size), "--set", "dropout=0"]
    if args.smoke:
        command += SMOKE
    threads = str(args.threads_per_worker)
    processes = []
    for index, tf_config in enumerate(
            distributed.local_tf_configs(workers)):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_NUM_INTRAOP_THREADS": threads,
               "TF_NUM_INTEROP_THREADS": "2", "TF_CONFIG": tf_config}
        log = open(os.path.join(folder, f"worker-{workers}-{index}.log"),
                   "w")
        processes.append(subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT))
        log.close()
    codes = [process.wait(timeout=args.timeout) for process in processes]
    if any(codes):
        for index in range(workers):
            path = os.path.join(folder, f"worker-{workers}-{index}.log")
            with open(path) as handle:
                print(handle.read()[-3000:], file=sys.stderr)
        raise SystemExit(f"A worker of the {workers}-worker run failed: "
                         f"exit codes {codes}")
    with open(os.path.join(run_dir, "metrics.json")) as handle:
        return json.load(handle)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs per run; the first is not timed "
                        "(default: 3)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="global batch size of both runs (default: 64)")
    parser.add_argument("--threads-per-worker", type=int, default=1,
                        help="intra-op threads of each worker (default: 1)")
    parser.add_argument("--smoke", action="store_true",
                        help="use the tiny smoke CNN")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds to wait for a run (default: 900)")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2, because the first "
                     f"epoch is not timed. Received: {args.epochs}")

    with tempfile.TemporaryDirectory(prefix="multiworker-") as folder:
        started = time.perf_counter()
        one_worker = run_cluster(1, args, folder)
        two_workers = run_cluster(2, args, folder)
        seconds = time.perf_counter() - started
    model = "smoke CNN" if args.smoke else "CNN"
    print(f"{model} on the digits, global batch "
          f"{one_worker['global_batch_size']}, {args.threads_per_worker} "
          f"intra-op thread(s) per worker, {os.cpu_count()} CPU(s)")
    for label, metrics in (("1 worker ", one_worker),
                           ("2 workers", two_workers)):
        print(f"{label}: {metrics['train_samples_per_second']:9.1f} "
              "samples/s")
    ratio = two_workers["train_samples_per_second"] / \
        one_worker["train_samples_per_second"]
    print(f"ratio 2 workers / 1 worker: {ratio:.2f} (2.00 is perfect "
          "scaling)")
    print(f"test accuracy: 1 worker {one_worker['test_accuracy']:.4f}, "
          f"2 workers {two_workers['test_accuracy']:.4f}")
    print(f"benchmark wall time: {seconds:.0f} s")


if __name__ == "__main__":
    main()
