"""Tests of distributed and mixed-precision training (training.distributed).

The unit tests check the cluster description, strategy selection, batch
planning for TPUs and precision checks without starting a strategy. The
slow tests run real strategies in subprocesses, started together by one
fixture so that their TensorFlow start-ups overlap:

- two `zoo train --strategy multi-worker` processes on 127.0.0.1, one
  killed after the first checkpoint, then both rerun to resume; the
  result is compared with single-process training in this process;
- this file run as a script, which splits the CPU into two logical
  devices (possible only before TensorFlow starts) and trains under
  `MirroredStrategy`.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from training import distributed

SMOKE_CNN = ["--set", "filters=[4]", "--set", "dense_units=8",
             "--set", "convs_per_block=1", "--set", "dropout=0"]
SMOKE_CNN_OVERRIDES = {"filters": [4], "dense_units": 8,
                       "convs_per_block": 1, "dropout": 0}
# Each process gets one intra-op thread: the machine has two cores and
# several processes train at once.
THREAD_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "2",
              "TF_CPP_MIN_LOG_LEVEL": "2"}
# Weights of the two-worker run may differ from single-process training
# only by float32 rounding: the all-reduce adds two per-worker partial
# gradients where one process sums the whole batch at once, a change of
# about 1e-7 relative per step. Over the 78 Adam steps of two epochs
# (each step at most the learning rate 1e-3) the measured difference was
# 3e-8. 1e-5 leaves room for other summation orders and still fails on a
# real divergence: a different batch order or loss scale moves weights
# by about 1e-3.
WEIGHT_TOLERANCE = 1e-5
KILL_DETECTION_LIMIT = 120.0
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- unit tests: cluster, strategy names, batches, precision ----------------

def _tf_config(cluster, task_type="worker", index=0):
    return json.dumps({"cluster": cluster,
                       "task": {"type": task_type, "index": index}})


def test_tf_config_worker_zero_is_chief():
    workers = {"worker": ["a:1", "b:2"]}

    first = distributed.parse_tf_config(_tf_config(workers, index=0))
    second = distributed.parse_tf_config(_tf_config(workers, index=1))

    assert first.is_chief
    assert not second.is_chief
    assert first.num_workers == 2


def test_tf_config_chief_job_is_chief():
    cluster = {"chief": ["a:1"], "worker": ["b:2", "c:3"]}

    chief = distributed.parse_tf_config(_tf_config(cluster, "chief", 0))
    worker = distributed.parse_tf_config(_tf_config(cluster, "worker", 0))

    assert chief.is_chief
    assert not worker.is_chief
    assert chief.num_workers == 3


def test_local_tf_configs_distinct_ports():
    configs = [distributed.parse_tf_config(text)
               for text in distributed.local_tf_configs(3)]
    addresses = configs[0].cluster["worker"]

    assert [c.task_index for c in configs] == [0, 1, 2]
    assert all(c.cluster == configs[0].cluster for c in configs)
    assert len(set(addresses)) == 3
    assert all(a.startswith("127.0.0.1:") for a in addresses)
    assert [c.is_chief for c in configs] == [True, False, False]


def test_tf_config_empty_means_no_cluster():
    assert distributed.parse_tf_config("") is None
    assert distributed.parse_tf_config('{"cluster": {}}') is None
    assert distributed.is_chief("")


@pytest.mark.parametrize("text, fragment", [
    ("{not json", "not valid JSON"),
    (_tf_config({"worker": ["a:1"]}, index=3), "task index"),
    (_tf_config({"worker": ["a:1"]}, task_type="chief"), "task type"),
    (_tf_config({"worker": ["a:1"], "ps": ["b:2"]}), "['ps']"),
    (_tf_config({"chief": ["a:1", "b:2"]}, "chief"), "at most one"),
])
def test_tf_config_invalid(text, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        distributed.parse_tf_config(text)


def test_auto_strategy_choices():
    cluster = {"TF_CONFIG": _tf_config({"worker": ["a:1", "b:2"]})}

    assert distributed.resolve_strategy_name("auto", cluster, 0) == \
        "multi-worker"
    assert distributed.resolve_strategy_name(
        "auto", {"TPU_NAME": "my-tpu"}, 0) == "tpu"
    assert distributed.resolve_strategy_name("auto", {}, 2) == "mirrored"
    assert distributed.resolve_strategy_name("auto", {}, 1) == "default"
    assert distributed.resolve_strategy_name("mirrored", {}, 0) == \
        "mirrored"


def test_unknown_strategy_rejected():
    with pytest.raises(ValueError, match="Received: strategy='horovod'"):
        distributed.resolve_strategy_name("horovod", {}, 0)


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)

    with pytest.raises(ValueError, match="TF_CONFIG"):
        distributed.make_strategy("multi-worker")


@pytest.mark.parametrize("batch, replicas, expected_global", [
    (32, 8, 32), (30, 8, 32), (1, 8, 8), (33, 2, 34), (7, 1, 7)])
def test_global_batch_rounded(batch, replicas, expected_global):
    plan = distributed.plan_batches(batch, replicas, train_size=1000)

    assert plan.global_batch_size == expected_global
    assert plan.global_batch_size % replicas == 0
    assert plan.per_replica_batch_size * replicas == expected_global
    assert plan.drop_remainder


def test_plan_counts_full_batches_only():
    plan = distributed.plan_batches(32, 8, train_size=1257)
    capped = distributed.plan_batches(32, 8, train_size=1257,
                                      steps_per_epoch=5)

    assert plan.steps_per_epoch == 39
    assert capped.steps_per_epoch == 5


@pytest.mark.parametrize("kwargs, fragment", [
    ({"batch_size": 0, "num_replicas": 2, "train_size": 10}, "batch_size"),
    ({"batch_size": 8, "num_replicas": 0, "train_size": 10},
     "num_replicas"),
    ({"batch_size": 64, "num_replicas": 8, "train_size": 50},
     "no full batch"),
    ({"batch_size": 8, "num_replicas": 2, "train_size": 50,
      "steps_per_epoch": 0}, "steps_per_epoch"),
])
def test_plan_rejects_bad_sizes(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        distributed.plan_batches(**kwargs)


def test_tpu_dataset_static_shapes():
    import tensorflow as tf

    from zoo import datasets

    bundle = datasets.load("digits")
    plan = distributed.plan_batches(30, 8, len(bundle.train))

    def augment(x, y):
        # Augmentation stays a tf.data map, ahead of the device.
        return tf.image.flip_left_right(x), y

    recipe_data = datasets.as_dataset(bundle.train, plan.global_batch_size,
                                      shuffle=True, seed=0, augment=augment)
    data = distributed.training_dataset(recipe_data, plan)
    x_spec, y_spec = data.element_spec
    shapes = [tuple(x.shape) for x, _ in data]

    assert tuple(x_spec.shape) == (32, 8, 8, 1)
    assert tuple(y_spec.shape) == (32,)
    assert set(shapes) == {(32, 8, 8, 1)}
    assert len(shapes) == plan.steps_per_epoch
    assert data.options().experimental_distribute.auto_shard_policy == \
        tf.data.experimental.AutoShardPolicy.DATA


def test_invalid_precision_rejected():
    with pytest.raises(ValueError, match="Received: precision='float8'"):
        distributed.set_precision("float8")


def test_float16_requires_loss_scaling():
    import keras

    previous = distributed.set_precision("mixed_float16")
    try:
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
        model.compile(optimizer="adam", loss="mse")
        unscaled = keras.Model(inputs, keras.layers.Dense(2)(inputs))
        unscaled.head_optimizer = keras.optimizers.Adam()

        distributed.check_loss_scaling(model, "mixed_float16")
        with pytest.raises(ValueError, match="head_optimizer"):
            distributed.check_loss_scaling(unscaled, "mixed_float16")
        distributed.check_loss_scaling(unscaled, "mixed_bfloat16")
    finally:
        keras.config.set_dtype_policy(previous)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_callbacks_run_in_distributed_loop(tmp_path):
    import keras

    class Recorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.batches = 0
            self.epochs = []

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append(epoch)
            logs["val_recorded"] = float(epoch)

    recorder = Recorder()
    result = distributed.train(
        "cnn", strategy="default", callbacks=[recorder], epochs=2,
        steps_per_epoch=3, overrides=SMOKE_CNN_OVERRIDES,
        run_dir=str(tmp_path / "run"))

    assert recorder.batches == 6
    assert recorder.epochs == [0, 1]
    assert result.history["val_recorded"] == [0.0, 1.0]
    assert result.metrics["epochs_run"] == 2


# --- subprocess machinery ---------------------------------------------------

def _start_workers(run_dir, log_dir, tag, args):
    """Start two `zoo train` workers of one cluster; return the Popens."""
    processes = []
    for index, tf_config in enumerate(distributed.local_tf_configs(2)):
        env = {**os.environ, **THREAD_ENV, "TF_CONFIG": tf_config}
        log = open(os.path.join(log_dir, f"{tag}-{index}.log"), "w")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "zoo", "train", "cnn", "--strategy",
             "multi-worker", "--run-dir", run_dir, *SMOKE_CNN, *args],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        log.close()
    return processes


def _read(log_dir, tag, index):
    with open(os.path.join(log_dir, f"{tag}-{index}.log")) as handle:
        return handle.read()


def _wait(processes, timeout):
    deadline = time.monotonic() + timeout
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    return codes


@pytest.fixture(scope="module")
def background(tmp_path_factory):
    """Start the slow subprocesses at once; yield where they write."""
    root = tmp_path_factory.mktemp("distributed")
    logs = root / "logs"
    logs.mkdir()
    runs = {"kill": _start_workers(str(root / "cluster"), str(logs), "kill",
                                   ["--epochs", "40", "--no-export"])}
    mirrored_log = open(logs / "mirrored.log", "w")
    runs["mirrored"] = [subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "mirrored",
         str(root / "mirrored")],
        cwd=REPO_ROOT, env={**os.environ, **THREAD_ENV,
                            "TF_NUM_INTRAOP_THREADS": "2",
                            "PYTHONPATH": REPO_ROOT},
        stdout=mirrored_log, stderr=subprocess.STDOUT)]
    mirrored_log.close()
    yield {"root": root, "logs": str(logs), "runs": runs}
    for processes in runs.values():
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def _final_weights_digest(log):
    found = re.findall(r"weights sha256: ([0-9a-f]{64})", log)
    return found[-1] if found else None


# --- slow tests: real strategies --------------------------------------------

@pytest.mark.slow
def test_two_workers_kill_resume_match(background):
    """Kill a worker, rerun both, and compare with one process.

    One cluster run shows three things, to start fewer processes: a
    killed worker makes the other exit with a clear error; a rerun of
    both resumes from the checkpoint, ends with equal weights on both
    workers and exports on the chief only; and the result equals
    single-process training of the same epochs, global batch and seed.
    """
    import keras

    from training import trainer

    run_dir = background["root"] / "cluster"
    state_path = run_dir / "checkpoint" / "state.json"
    chief, worker = background["runs"]["kill"]
    deadline = time.monotonic() + 300
    while not state_path.exists() and time.monotonic() < deadline:
        assert chief.poll() is None, _read(background["logs"], "kill", 0)
        time.sleep(0.2)
    assert state_path.exists(), _read(background["logs"], "kill", 0)

    worker.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    code = _wait([chief], timeout=KILL_DETECTION_LIMIT + 60)[0]
    detection_seconds = time.monotonic() - killed
    log = _read(background["logs"], "kill", 0)
    with open(state_path) as handle:
        done = json.load(handle)["epoch"]

    assert code == 2, log
    assert detection_seconds < KILL_DETECTION_LIMIT
    assert "another worker stopped" in log
    assert "start every worker again" in log

    epochs = done + 1
    resumed = _start_workers(
        str(run_dir), background["logs"], "resume",
        ["--epochs", str(epochs), "--base", str(background["root"] / "out")])
    # Train the single-process reference while the workers run.
    reference = trainer.train(
        "cnn", strategy="default", overrides=SMOKE_CNN_OVERRIDES,
        epochs=epochs, run_dir=str(background["root"] / "reference"))
    codes = _wait(resumed, timeout=400)
    logs = [_read(background["logs"], "resume", i) for i in range(2)]
    with open(run_dir / "metrics.json") as handle:
        metrics = json.load(handle)
    with open(run_dir / "history.csv") as handle:
        rows = handle.read().strip().splitlines()

    assert codes == [0, 0], logs
    for text in logs:
        assert f"Resumed from {run_dir / 'checkpoint'}: {done} epoch(s)" \
            in text
        assert f"epoch {done}/" not in text
    assert metrics["epochs_run"] == epochs
    assert metrics["num_workers"] == 2
    assert len(rows) == epochs + 1
    assert not (run_dir / "checkpoint").exists()
    assert _final_weights_digest(logs[0]) is not None
    assert _final_weights_digest(logs[0]) == _final_weights_digest(logs[1])
    assert "exported:" in logs[0]
    assert "the chief exports" in logs[1]
    assert os.listdir(background["root"] / "out" / "cnn") == ["1"]
    trained = keras.saving.load_model(str(run_dir / "best.keras"))
    for got, want in zip(trained.get_weights(),
                         reference.model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=0,
                                   atol=WEIGHT_TOLERANCE)
    assert metrics["test_accuracy"] == pytest.approx(
        reference.metrics["test_accuracy"], abs=1e-6)


@pytest.mark.slow
def test_mirrored_two_cpu_devices(background):
    process = background["runs"]["mirrored"][0]
    code = _wait([process], timeout=400)[0]
    with open(os.path.join(background["logs"], "mirrored.log")) as handle:
        log = handle.read()
    assert code == 0, log
    with open(background["root"] / "mirrored" / "results.json") as handle:
        results = json.load(handle)

    assert results["cnn_replicas"] == 2
    assert results["cnn_max_difference"] <= WEIGHT_TOLERANCE
    assert results["two_optimizer_max_difference"] <= 1e-6
    assert results["two_optimizer_changed"] > 1e-4
    assert results["dcgan_replicas"] == 2
    assert results["dcgan_finite"]
    assert results["dcgan_changed"] > 0.0
    assert results["float16_optimizer"] == "LossScaleOptimizer"
    assert results["float16_compute_dtype"] == "float16"
    assert results["float16_finite"]
    assert results["bfloat16_compute_dtype"] == "bfloat16"
    assert results["policy_after"] == "float32"
    assert "loss scaling" in results["dcgan_float16_error"]
    assert "No TPU found" in results["tpu_error"]


# --- the mirrored script (run as `python tests/test_distributed.py`) --------

def _two_optimizer_model_class():
    import keras
    import tensorflow as tf

    class TwoOptimizerClassifier(keras.Model):
        """A classifier whose two layers have their own optimizers."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.features = keras.layers.Dense(16, activation="tanh")
            self.head = keras.layers.Dense(10)
            self.loss_tracker = keras.metrics.Mean(name="loss")

        def call(self, x, training=False):
            # x: (batch, 64) -> features (batch, 16) -> logits (batch, 10)
            return self.head(self.features(x))

        def compile(self, features_optimizer, head_optimizer):
            super().compile()
            self.features_optimizer = features_optimizer
            self.head_optimizer = head_optimizer
            features_optimizer.build(self.features.trainable_variables)
            head_optimizer.build(self.head.trainable_variables)

        @property
        def metrics(self):
            return [self.loss_tracker]

        def train_step(self, data):
            x, y = data
            replicas = tf.distribute.get_replica_context() \
                .num_replicas_in_sync
            with tf.GradientTape(persistent=True) as tape:
                loss = keras.ops.mean(
                    keras.losses.sparse_categorical_crossentropy(
                        y, self(x, training=True), from_logits=True))
                # The optimizers sum gradients over replicas, so each
                # replica's mean counts 1 / replicas of the global mean.
                scaled = loss / replicas
            for layer, optimizer in ((self.features,
                                      self.features_optimizer),
                                     (self.head, self.head_optimizer)):
                variables = layer.trainable_variables
                optimizer.apply_gradients(
                    zip(tape.gradient(scaled, variables), variables))
            self.loss_tracker.update_state(loss)
            return {"loss": self.loss_tracker.result()}

    return TwoOptimizerClassifier


def _two_optimizer_weights(strategy, steps=3):
    import keras
    import tensorflow as tf

    from zoo import datasets

    keras.utils.set_random_seed(0)
    bundle = datasets.load("digits-flat")
    plan = distributed.plan_batches(32, strategy.num_replicas_in_sync,
                                    len(bundle.train), steps)
    data = distributed.training_dataset(
        datasets.as_dataset(bundle.train, 32), plan)
    with strategy.scope():
        model = _two_optimizer_model_class()()
        model(tf.zeros((1, 64)))
        model.compile(keras.optimizers.SGD(0.5, momentum=0.9),
                      keras.optimizers.Adam(1e-2))
        distributed.build_training_state(model, next(iter(data)))
    initial = [np.array(w) for w in model.get_weights()]
    step = distributed.make_train_function(strategy, model)
    iterator = iter(strategy.experimental_distribute_dataset(data))
    for _ in range(plan.steps_per_epoch):
        step(iterator)
    return initial, [np.array(w) for w in model.get_weights()]


def _max_difference(first, second):
    return max(float(np.max(np.abs(a - b))) for a, b in zip(first, second))


def _mirrored_main(out_dir):
    """Train under MirroredStrategy on two logical CPUs; write results."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    import zoo
    from training import trainer

    os.makedirs(out_dir, exist_ok=True)
    results = {}

    def run(name, tag, **kwargs):
        return trainer.train(name, run_dir=os.path.join(out_dir, tag),
                             **kwargs)

    mirrored = run("cnn", "cnn-mirrored", strategy="mirrored", epochs=1,
                   overrides=SMOKE_CNN_OVERRIDES)
    single = run("cnn", "cnn-default", strategy="default", epochs=1,
                 overrides=SMOKE_CNN_OVERRIDES)
    results["cnn_replicas"] = mirrored.metrics["num_replicas"]
    results["cnn_max_difference"] = _max_difference(
        mirrored.model.get_weights(), single.model.get_weights())

    initial, two_replicas = _two_optimizer_weights(
        distributed.make_strategy("mirrored")[0])
    _, one_replica = _two_optimizer_weights(tf.distribute.get_strategy())
    results["two_optimizer_max_difference"] = _max_difference(
        two_replicas, one_replica)
    results["two_optimizer_changed"] = _max_difference(initial,
                                                       two_replicas)

    spec = zoo.get_spec("dcgan")
    keras.utils.set_random_seed(0)
    untrained = spec.build(**spec.hyperparameters(spec.smoke))
    gan = run("dcgan", "dcgan", strategy="mirrored", epochs=1,
              steps_per_epoch=2, overrides=dict(spec.smoke))
    results["dcgan_replicas"] = gan.metrics["num_replicas"]
    results["dcgan_finite"] = all(
        np.isfinite(v) for values in gan.history.values() for v in values)
    results["dcgan_changed"] = _max_difference(
        untrained.generator.get_weights(), gan.model.generator.get_weights())

    half = run("cnn", "cnn-float16", strategy="mirrored",
               precision="mixed_float16", epochs=1, steps_per_epoch=2,
               overrides=SMOKE_CNN_OVERRIDES)
    results["float16_optimizer"] = type(half.model.optimizer).__name__
    results["float16_compute_dtype"] = half.model.get_layer(
        "block0_conv0").compute_dtype
    results["float16_finite"] = all(
        np.isfinite(w).all() for w in half.model.get_weights())
    brain = run("cnn", "cnn-bfloat16", strategy="mirrored",
                precision="mixed_bfloat16", epochs=1, steps_per_epoch=2,
                overrides=SMOKE_CNN_OVERRIDES)
    results["bfloat16_compute_dtype"] = brain.model.get_layer(
        "block0_conv0").compute_dtype
    results["policy_after"] = keras.config.dtype_policy().name
    try:
        run("dcgan", "dcgan-float16", strategy="mirrored",
            precision="mixed_float16", epochs=1, steps_per_epoch=1,
            overrides=dict(spec.smoke))
        results["dcgan_float16_error"] = ""
    except ValueError as error:
        results["dcgan_float16_error"] = str(error)
    try:
        distributed.make_strategy("tpu", tpu="local")
        results["tpu_error"] = ""
    except ValueError as error:
        results["tpu_error"] = str(error)

    with open(os.path.join(out_dir, "results.json"), "w") as handle:
        json.dump(results, handle, indent=2)


if __name__ == "__main__":
    if sys.argv[1:2] == ["mirrored"]:
        sys.path.insert(0, REPO_ROOT)
        _mirrored_main(sys.argv[2])
