"""Distributed and mixed-precision training on `tf.distribute`.

`train` runs `zoo train NAME --strategy ...` with a custom loop instead of
`Model.fit`, because Keras 3's `fit` fails under
`MultiWorkerMirroredStrategy` (keras-team/keras#20585: a `PerReplica`
value reaches a tensor conversion). The loop works the same way under
every strategy:

- The model, its optimizers and its metrics are created under
  `strategy.scope()`, so their variables are mirrored on every replica.
- Each step calls the model's own `train_step` on one replica's share of
  the global batch with `strategy.run`. A compiled Keras model's
  `train_step` divides its per-replica mean loss by the replica count
  and the optimizer sums the gradients over the replicas. Because every
  replica gets the same number of samples, the sum is the gradient of
  the mean loss over the global batch.
- Training batches are full: the last partial batch of an epoch is
  dropped and the global batch size is rounded up to a multiple of the
  replica count. This keeps the per-replica batches equal, and it gives
  the static shapes that TPUs need.
- Metrics variables are synchronized on read, so reading them after an
  epoch sums their totals and counts over all replicas and workers.
- After each epoch the weights are copied into an undistributed copy of
  the model, which every worker evaluates on the validation split. The
  copies are equal because the workers hold equal weights, so early
  stopping decides the same on every worker. A collective makes the stop
  decision common anyway.
- Only the chief writes files: the checkpoint after each epoch,
  `history.csv`, `best.keras`, `curves.png` and `metrics.json`, and the
  `zoo train` command exports only on the chief. Rerunning the same
  command on every worker with the same `run_dir` resumes from the last
  checkpoint.
- A worker that dies is detected by TensorFlow's coordination service
  (missing heartbeats) or by the collective timeout. The other workers
  then raise `WorkerLostError` instead of waiting forever.

- The recipe's own `fit` still runs, with `model.fit` replaced by this
  loop for the call. So a recipe's preparation (a forecaster's
  standardization, a SOM's schedule) and its callbacks (a GAN's Fréchet
  distance and sample grids) work under every strategy. Callbacks get the
  distributed model, and the values they add to the epoch logs can be
  the monitored value.

A model with its own `train_step`, such as the GAN with two optimizers,
trains the same way. Its `train_step` must average its losses over the
global batch: divide each per-replica mean by
`tf.distribute.get_replica_context().num_replicas_in_sync`, as Keras does
for compiled losses. Its optimizers must be built in `compile`, because a
variable cannot be created inside a replica's step.
"""

import csv
import dataclasses
import glob
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time

logger = logging.getLogger(__name__)

STRATEGIES = ("auto", "default", "mirrored", "multi-worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
DEFAULT_COLLECTIVE_TIMEOUT = 300.0
CHECKPOINT_FOLDER = "checkpoint"
STATE_FILE = "state.json"
# The chief and the workers train; an evaluator or parameter server would
# need another strategy.
TRAINING_JOBS = ("chief", "worker")


class WorkerLostError(RuntimeError):
    """Raised when a collective fails because another worker stopped."""


# --- the cluster ------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ClusterTask:
    """This process's place in a cluster, as `TF_CONFIG` describes it.

    Attributes:
        cluster: Job name to the list of `host:port` addresses.
        task_type: This process's job, `"chief"` or `"worker"`.
        task_index: This process's index in its job.
    """

    cluster: dict
    task_type: str
    task_index: int

    @property
    def num_workers(self):
        """Number of training processes (the chief and the workers)."""
        return sum(len(self.cluster.get(job, ())) for job in TRAINING_JOBS)

    @property
    def is_chief(self):
        """Whether this process writes the files of the run.

        The chief is the `chief` task, or worker 0 when the cluster has no
        `chief` job, as in TensorFlow's own multi-worker tutorials.
        """
        if self.task_type == "chief":
            return True
        return (self.task_type == "worker" and self.task_index == 0
                and not self.cluster.get("chief"))


def parse_tf_config(text=None):
    """Parse a `TF_CONFIG` value into a `ClusterTask`.

    Args:
        text: The JSON text. Defaults to the `TF_CONFIG` environment
            variable.

    Returns:
        A `ClusterTask`, or `None` when `text` is empty or names no cluster.

    Raises:
        ValueError: the text is not JSON, or its task is not in its
            cluster, or it names a job this loop does not run.
    """
    if text is None:
        text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error}). Expected "
            '{"cluster": {"worker": ["host:port", ...]}, "task": '
            '{"type": "worker", "index": 0}}. Received: '
            f"{text!r}"
        ) from error
    if not isinstance(config, dict):
        raise ValueError(
            f"TF_CONFIG must be a JSON object. Received: {text!r}"
        )
    cluster = config.get("cluster") or {}
    if not cluster:
        return None
    if not isinstance(cluster, dict) or not all(
        isinstance(v, list) and all(isinstance(a, str) for a in v)
        for v in cluster.values()
    ):
        raise ValueError(
            "TF_CONFIG's `cluster` must map job names to lists of "
            f"'host:port' strings. Received: {cluster!r}"
        )
    unsupported = sorted(set(cluster) - set(TRAINING_JOBS))
    if unsupported:
        raise ValueError(
            f"TF_CONFIG names the job(s) {unsupported}, but multi-worker "
            "training runs only `chief` and `worker` tasks. Remove the "
            f"other jobs from the cluster. Received: {cluster!r}"
        )
    if len(cluster.get("chief", ())) > 1:
        raise ValueError(
            "TF_CONFIG may name at most one `chief` task. "
            f"Received: {cluster['chief']!r}"
        )
    task = config.get("task") or {}
    task_type, task_index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise ValueError(
            f"TF_CONFIG's task type must be one of the cluster's jobs "
            f"{sorted(cluster)}. Received: task={task!r}"
        )
    if not isinstance(task_index, int) or not \
            0 <= task_index < len(cluster[task_type]):
        raise ValueError(
            f"TF_CONFIG's task index must be in [0, "
            f"{len(cluster[task_type])}) for job '{task_type}'. "
            f"Received: task={task!r}"
        )
    return ClusterTask(cluster=cluster, task_type=task_type,
                       task_index=task_index)


def is_chief(tf_config=None):
    """Return whether this process is the chief (True outside a cluster).

    Args:
        tf_config: `TF_CONFIG` text. Defaults to the environment variable.
    """
    task = parse_tf_config(tf_config)
    return task is None or task.is_chief


def local_tf_configs(num_workers, host="127.0.0.1"):
    """Make one `TF_CONFIG` text per worker of a cluster on this machine.

    Each worker gets a port that is free now. Another process may still
    take it before the worker starts, in which case the worker fails to
    bind and the cluster must be started again.

    Args:
        num_workers: Number of worker processes.
        host: Address the workers listen on. Defaults to `"127.0.0.1"`.

    Returns:
        A list of JSON texts, the one of index `i` for worker `i`.
    """
    import socket

    if not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(
            "`num_workers` must be a positive integer. "
            f"Received: num_workers={num_workers!r}"
        )
    sockets = [socket.socket() for _ in range(num_workers)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        ports = [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    cluster = {"worker": [f"{host}:{port}" for port in ports]}
    return [json.dumps({"cluster": cluster,
                        "task": {"type": "worker", "index": index}})
            for index in range(num_workers)]


def tpu_hint(environ=None):
    """Return the TPU address that the environment names, else `None`.

    A Cloud TPU is named by `TPU_NAME` (set by Cloud TPU and by GKE), and
    a TPU VM has its chips at `/dev/accel*`, reached as `"local"`. Only
    these hints are read: `TPUClusterResolver()` without a name queries the
    GCE metadata server, which does not exist off Google Cloud.

    Args:
        environ: Environment mapping. Defaults to `os.environ`.
    """
    environ = os.environ if environ is None else environ
    if environ.get("TPU_NAME"):
        return environ["TPU_NAME"]
    if glob.glob("/dev/accel[0-9]*"):
        return "local"
    return None


def resolve_strategy_name(name, environ=None, gpu_count=None):
    """Resolve `"auto"` to a strategy name and validate the others.

    `auto` picks `multi-worker` when `TF_CONFIG` names a cluster, `tpu`
    when the environment names a TPU (see `tpu_hint`), `mirrored` when
    there are several GPUs, and `default` otherwise.

    Args:
        name: One of `STRATEGIES`.
        environ: Environment mapping. Defaults to `os.environ`.
        gpu_count: Number of GPUs. Defaults to the GPUs TensorFlow lists.

    Returns:
        A name of `STRATEGIES` other than `"auto"`.
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"`strategy` must be one of {', '.join(STRATEGIES)}. "
            f"Received: strategy={name!r}"
        )
    environ = os.environ if environ is None else environ
    if name != "auto":
        return name
    if parse_tf_config(environ.get("TF_CONFIG", "")) is not None:
        return "multi-worker"
    if tpu_hint(environ) is not None:
        return "tpu"
    if gpu_count is None:
        import tensorflow as tf

        gpu_count = len(tf.config.list_physical_devices("GPU"))
    return "mirrored" if gpu_count > 1 else "default"


def make_strategy(name="auto", devices=None, tpu=None,
                  collective_timeout=DEFAULT_COLLECTIVE_TIMEOUT):
    """Create the `tf.distribute.Strategy` called `name`.

    Call it before any other TensorFlow work of the process: a
    multi-worker strategy configures the collective ops of the runtime.

    Args:
        name: One of `STRATEGIES`. Defaults to `"auto"`.
        devices: Devices of `mirrored`, such as `["/cpu:0", "/cpu:1"]`.
            Defaults to every GPU, else every logical CPU device.
        tpu: TPU address for `tpu`. Defaults to `tpu_hint()`, else
            `"local"`.
        collective_timeout: Seconds a multi-worker collective waits for
            the other workers before it fails. Defaults to 300.

    Returns:
        `(strategy, resolved_name)`.
    """
    import tensorflow as tf

    if collective_timeout is not None and collective_timeout <= 0:
        raise ValueError(
            "`collective_timeout` must be a positive number of seconds. "
            f"Received: {collective_timeout!r}"
        )
    resolved = resolve_strategy_name(name)
    if resolved == "default":
        return tf.distribute.get_strategy(), resolved
    key = (resolved, tuple(devices or ()), tpu, collective_timeout)
    if key not in _STRATEGY_CACHE:
        _STRATEGY_CACHE[key] = _new_strategy(resolved, devices, tpu,
                                             collective_timeout)
    return _STRATEGY_CACHE[key], resolved


# Strategies are made once per process and reused: two MirroredStrategy
# objects over the same devices issue colliding collective keys, a
# multi-worker strategy can be created only once, and a TPU system is
# initialized once.
_STRATEGY_CACHE = {}


def _new_strategy(resolved, devices, tpu, collective_timeout):
    import tensorflow as tf

    if resolved == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in
                       (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=list(devices))
    if resolved == "multi-worker":
        if parse_tf_config() is None:
            raise ValueError(
                "`strategy='multi-worker'` needs the TF_CONFIG environment "
                "variable naming the cluster and this task, such as "
                '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}. See '
                "docs/distributed.md for Slurm and Kubernetes."
            )
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=collective_timeout)
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=options)
    address = tpu or tpu_hint() or "local"
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise ValueError(
            f"No TPU found at {address!r}: {error}. Run on a TPU VM, or "
            "set TPU_NAME (or `tpu=`) to the TPU's name or grpc:// address."
        ) from error
    return tf.distribute.TPUStrategy(resolver)


def num_workers_of(strategy):
    """Return the number of worker processes `strategy` spans."""
    resolver = getattr(strategy.extended, "_cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, sum(len(spec.get(job, ())) for job in TRAINING_JOBS))


# --- batches ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """How an epoch is cut into global and per-replica batches.

    Attributes:
        num_replicas: Replicas in sync, over all workers.
        requested_batch_size: The batch size the user asked for.
        global_batch_size: The batch of one step over all replicas: the
            request rounded up to a multiple of `num_replicas`.
        per_replica_batch_size: `global_batch_size / num_replicas`.
        steps_per_epoch: Full global batches per epoch.
        drop_remainder: Always `True`, so every batch has a static shape
            and every replica gets the same number of samples.
    """

    num_replicas: int
    requested_batch_size: int
    global_batch_size: int
    per_replica_batch_size: int
    steps_per_epoch: int
    drop_remainder: bool = True


def plan_batches(batch_size, num_replicas, train_size, steps_per_epoch=None):
    """Round the global batch to the replicas and count the steps.

    Args:
        batch_size: Requested global batch size.
        num_replicas: Replicas in sync.
        train_size: Number of training samples.
        steps_per_epoch: Optional cap on the steps of an epoch. Defaults to
            every full global batch.

    Returns:
        A `BatchPlan`.

    Raises:
        ValueError: an argument is not positive, or the training split has
            no full global batch.
    """
    for argument, value in (("batch_size", batch_size),
                            ("num_replicas", num_replicas),
                            ("train_size", train_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(
                f"`{argument}` must be a positive integer. "
                f"Received: {argument}={value!r}"
            )
    if steps_per_epoch is not None and (
            not isinstance(steps_per_epoch, int) or steps_per_epoch < 1):
        raise ValueError(
            "`steps_per_epoch` must be a positive integer or None. "
            f"Received: steps_per_epoch={steps_per_epoch!r}"
        )
    per_replica = math.ceil(batch_size / num_replicas)
    global_batch = per_replica * num_replicas
    if global_batch != batch_size:
        logger.warning(
            "Global batch size %d rounded up to %d, a multiple of the %d "
            "replicas.", batch_size, global_batch, num_replicas)
    full_batches = train_size // global_batch
    if full_batches == 0:
        raise ValueError(
            f"The global batch of {global_batch} samples ({per_replica} on "
            f"each of {num_replicas} replicas) exceeds the {train_size} "
            "training samples, so no full batch exists. Use a smaller "
            "`--batch-size`."
        )
    steps = min(full_batches, steps_per_epoch or full_batches)
    return BatchPlan(
        num_replicas=num_replicas,
        requested_batch_size=batch_size,
        global_batch_size=global_batch,
        per_replica_batch_size=per_replica,
        steps_per_epoch=steps,
    )


def training_dataset(dataset, plan):
    """Return `dataset` cut into full global batches of static shape.

    The input is the recipe's training pipeline, with its shuffling and
    augmentation kept in tf.data. Its batches are regrouped into batches
    of `plan.global_batch_size` with the remainder dropped. Data sharding
    between workers is set to `DATA`: every worker reads the whole
    pipeline and keeps its share of each global batch, because in-memory
    arrays have no files to split.

    Args:
        dataset: A batched `tf.data.Dataset`.
        plan: The `BatchPlan`.

    Returns:
        A `tf.data.Dataset`.
    """
    import tensorflow as tf

    dataset = dataset.rebatch(plan.global_batch_size, drop_remainder=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = \
        tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


# --- precision --------------------------------------------------------------

def set_precision(precision):
    """Set Keras's global dtype policy and return the previous policy name.

    `mixed_float16` and `mixed_bfloat16` compute in 16 bits and keep the
    variables in float32. float16 needs loss scaling, which
    `keras.Model.compile` adds by wrapping the optimizer in a
    `keras.optimizers.LossScaleOptimizer`. bfloat16 has float32's exponent
    range and needs none.

    Args:
        precision: One of `PRECISIONS`.
    """
    import keras

    if precision not in PRECISIONS:
        raise ValueError(
            f"`precision` must be one of {', '.join(PRECISIONS)}. "
            f"Received: precision={precision!r}"
        )
    previous = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(precision)
    return previous


def model_optimizers(model):
    """Return `{attribute: optimizer}` of every optimizer `model` holds."""
    import keras

    found = {}
    for attribute, value in vars(model).items():
        if isinstance(value, keras.optimizers.Optimizer) and all(
                value is not other for other in found.values()):
            found[attribute.lstrip("_")] = value
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and all(
            optimizer is not other for other in found.values()):
        found["optimizer"] = optimizer
    return found


def check_loss_scaling(model, precision):
    """Raise `ValueError` when float16 training would lack loss scaling.

    Keras wraps the optimizer of a compiled model in a
    `LossScaleOptimizer` itself. A model with its own optimizers (a GAN)
    must do the same and call `optimizer.scale_loss` in its `train_step`.
    Without loss scaling, float16 gradients below about 6e-8 become zero.
    """
    import keras

    if precision != "mixed_float16":
        return
    unscaled = sorted(
        attribute for attribute, optimizer in model_optimizers(model).items()
        if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer))
    if unscaled:
        raise ValueError(
            f"Model '{model.name}' trains with optimizer(s) {unscaled} "
            "without loss scaling, so its float16 gradients can underflow "
            "to zero. Use `--precision mixed_bfloat16`, which needs no loss "
            "scaling, or wrap them in keras.optimizers.LossScaleOptimizer "
            "and call `scale_loss` in the model's train_step."
        )


# --- building the distributed state ----------------------------------------

def build_training_state(model, sample_batch):
    """Create every variable that a training step would create lazily.

    A variable cannot be created inside `strategy.run`, so this builds the
    optimizers and the compiled metrics first, in the strategy's scope.

    Args:
        model: The compiled model, built in the strategy's scope.
        sample_batch: One batch of the training data, used for the shapes
            of the compiled metrics.
    """
    import keras

    for attribute, optimizer in model_optimizers(model).items():
        if optimizer.built:
            continue
        if attribute != "optimizer":
            raise ValueError(
                f"Optimizer `{attribute}` of model '{model.name}' is not "
                "built after `compile`. Build it there with "
                "`optimizer.build(variables)`, because distributed steps "
                "cannot create its variables."
            )
        optimizer.build(model.trainable_variables)
    if any(getattr(metric, "built", True) is False
           for metric in model.metrics):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(
            sample_batch)
        model.compute_metrics(x, y, model(x, training=False),
                              sample_weight=sample_weight)
        model.reset_metrics()


def copy_optimizer_state(source, target):
    """Copy the optimizer variables of `source` into those of `target`.

    `target` is an undistributed copy of `source`, compiled the same way,
    so its optimizers have the same variables once built. Its unbuilt
    `optimizer` is built on its trainable variables first.
    """
    targets = model_optimizers(target)
    for attribute, original in model_optimizers(source).items():
        copy = targets.get(attribute)
        if copy is None:
            continue
        if not copy.built and attribute == "optimizer":
            copy.build(target.trainable_variables)
        if len(copy.variables) != len(original.variables):
            logger.warning("Optimizer `%s` has %d variables in the copy and "
                           "%d in training; its state is not copied.",
                           attribute, len(copy.variables),
                           len(original.variables))
            continue
        for variable, value in zip(copy.variables, original.variables):
            variable.assign(value.numpy())


def make_train_function(strategy, model):
    """Return a `tf.function` running one distributed `model.train_step`."""
    import tensorflow as tf

    @tf.function
    def train_function(iterator):
        strategy.run(model.train_step, args=(next(iterator),))

    return train_function


def gather_values(strategy, value):
    """Return `value` of every replica, over all workers, as a NumPy array.

    Args:
        strategy: The strategy.
        value: An int or float this process contributes.
    """
    import tensorflow as tf

    local = tf.constant([value], dtype=tf.float32)
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda context: local)
    return strategy.gather(per_replica, axis=0).numpy()


# --- checkpoints ------------------------------------------------------------

def _write_json_atomic(path, payload):
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(temporary, path)


class Checkpoint:
    """The resumable state of a distributed run, written by the chief.

    After each epoch the chief saves the model's and optimizers' variables
    (`model.save_weights`, which includes the optimizer slots and step
    counts), the best weights so far, the history and the early-stopping
    counters. The weights go to a new file first, then `state.json` is
    replaced atomically to point at it, then older files are removed, so a
    kill at any moment leaves a consistent checkpoint. Every worker reads
    the same folder on resume, so it must be on storage that all workers
    share.

    Args:
        folder: Folder of the checkpoint.
        chief: Whether this process writes it. Defaults to `True`.
    """

    def __init__(self, folder, chief=True):
        self.folder = folder
        self.chief = chief

    @property
    def state_path(self):
        return os.path.join(self.folder, STATE_FILE)

    def load(self):
        """Return the saved state dict, or `None` when there is none."""
        if not os.path.isfile(self.state_path):
            return None
        with open(self.state_path) as handle:
            return json.load(handle)

    def restore(self, model, state):
        """Load the weights of `state` into `model`; return best weights."""
        import numpy as np

        model.load_weights(os.path.join(self.folder, state["weights"]))
        if not state.get("best_weights"):
            return None
        with np.load(os.path.join(self.folder,
                                  state["best_weights"])) as arrays:
            return [arrays[f"w{i}"] for i in range(len(arrays.files))]

    def save(self, model, state, best_weights):
        """Save `model`, `best_weights` and `state` (chief only)."""
        import numpy as np

        if not self.chief:
            return
        os.makedirs(self.folder, exist_ok=True)
        epoch = state["epoch"]
        weights = f"epoch-{epoch:04d}.weights.h5"
        temporary = os.path.join(self.folder, f"tmp-{weights}")
        model.save_weights(temporary, overwrite=True)
        os.replace(temporary, os.path.join(self.folder, weights))
        best = None
        if best_weights is not None:
            best = f"best-epoch-{state['best_epoch']:04d}.npz"
            path = os.path.join(self.folder, best)
            if not os.path.isfile(path):
                temporary = os.path.join(self.folder, "tmp-best.npz")
                with open(temporary, "wb") as handle:
                    np.savez(handle, **{f"w{i}": w
                                        for i, w in enumerate(best_weights)})
                os.replace(temporary, path)
        _write_json_atomic(self.state_path,
                           {**state, "weights": weights,
                            "best_weights": best})
        keep = {weights, best, STATE_FILE}
        for path in glob.glob(os.path.join(self.folder, "*")):
            if os.path.basename(path) not in keep:
                os.remove(path)

    def delete(self):
        """Remove the checkpoint folder (chief only)."""
        if self.chief and os.path.isdir(self.folder):
            shutil.rmtree(self.folder)


# --- the training loop ------------------------------------------------------

_TRAIN_OPTIONS = ("dataset", "epochs", "batch_size", "learning_rate",
                  "seed", "overrides", "run_dir", "runs_root", "weights",
                  "augment", "callbacks", "steps_per_epoch", "patience",
                  "data_dir", "download")


def _check_options(options):
    unknown = sorted(key for key, value in options.items()
                     if key not in _TRAIN_OPTIONS and value is not None
                     and value is not False)
    if unknown:
        raise ValueError(
            f"Option(s) {unknown} are not supported with a distribution "
            "strategy or a precision policy. Run without `--strategy` and "
            "`--precision` to use them."
        )


def _is_better(value, best, mode):
    if best is None:
        return True
    return value < best if mode == "min" else value > best


def _finite(logs):
    return all(math.isfinite(v) for v in logs.values())


def _write_history(path, history):
    keys = sorted(history)
    epochs = len(next(iter(history.values()), []))
    temporary = f"{path}.tmp"
    with open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", *keys])
        for epoch in range(epochs):
            writer.writerow([epoch, *(history[k][epoch] for k in keys)])
    os.replace(temporary, path)


def _save_model_atomic(model, path):
    folder = os.path.dirname(path) or "."
    handle, temporary = tempfile.mkstemp(suffix=".keras", dir=folder)
    os.close(handle)
    try:
        model.save(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _resumable_config(config):
    """Return the config entries a resumed run must share with its start.

    The command line and the epoch budget may differ, so a rerun can
    train a stopped run for more (or fewer) epochs.
    """
    config = json.loads(json.dumps(config))
    config.pop("command", None)
    for key in ("epochs", "patience"):
        config.get("settings", {}).pop(key, None)
    return config


def _check_run_dir(run_dir, config):
    if os.path.isfile(os.path.join(run_dir, "metrics.json")):
        raise ValueError(
            f"Run folder {run_dir!r} contains a finished run (metrics.json "
            "exists). Pass a new `--run-dir` to train again."
        )
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        return
    with open(path) as handle:
        found = _resumable_config(json.load(handle))
    expected = _resumable_config(config)
    if found != expected:
        differences = {
            key: (found.get(key), expected.get(key))
            for key in sorted(set(found) | set(expected))
            if found.get(key) != expected.get(key)}
        raise ValueError(
            f"Run folder {run_dir!r} contains a run with another "
            "configuration, so it cannot be resumed with this one. Pass a "
            "new `--run-dir`, or the same options. Differences (found, "
            f"requested): {differences}"
        )


def train(name, *, strategy="auto", precision="float32", devices=None,
          tpu=None, collective_timeout=DEFAULT_COLLECTIVE_TIMEOUT,
          **options):
    """Train registered model `name` with a `tf.distribute` strategy.

    It accepts the arguments of `training.trainer.train` (data set,
    epochs, batch size, learning rate, seed, overrides, run folder,
    pretrained weights, augmentation, Keras callbacks, steps per epoch,
    patience) and writes the same run folder. Callbacks run on every
    worker and get no per-step metrics, since reading them would cost a
    collective. Under `multi-worker`, start the same call
    on every worker, each with its own `TF_CONFIG`.

    Args:
        name: Registered model name.
        strategy: One of `STRATEGIES`. Defaults to `"auto"`.
        precision: One of `PRECISIONS`. Defaults to `"float32"`.
        devices: Devices of the `mirrored` strategy. Defaults to every GPU,
            else every logical CPU device.
        tpu: TPU name or address for the `tpu` strategy. Defaults to
            `TPU_NAME`, else `"local"`.
        collective_timeout: Seconds a multi-worker collective waits for
            the other workers. Defaults to 300.
        **options: The arguments of `training.trainer.train`.

    Returns:
        A `training.trainer.TrainResult` whose model is an undistributed
        copy with the best weights, ready to evaluate and export.

    Raises:
        WorkerLostError: another worker stopped during training.

    Example:

    ```python
    from training import distributed

    result = distributed.train("cnn", strategy="mirrored",
                               precision="mixed_bfloat16", epochs=5)
    ```

    Note:
        Every replica draws the same random numbers
        (dropout masks, a GAN's latent vectors), because the seed state is
        a mirrored variable.
    """
    import keras

    options = {key: value for key, value in options.items()
               if key != "strategy" and key != "precision"}
    _check_options(options)
    if precision is None:
        precision = "float32"
    if precision not in PRECISIONS:
        raise ValueError(
            f"`precision` must be one of {', '.join(PRECISIONS)}. "
            f"Received: precision={precision!r}"
        )
    previous_policy = set_precision(precision)
    try:
        return _train(name, strategy or "default", precision, devices, tpu,
                      collective_timeout, options)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _train(name, strategy_name, precision, devices, tpu,
           collective_timeout, options):
    import tensorflow as tf

    run = _DistributedRun(name, strategy_name, precision, devices, tpu,
                          collective_timeout, options)
    lost = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError, tf.errors.AbortedError)
    try:
        run.restore()
        run.run_recipe()
    except lost as error:
        if run.num_workers == 1:
            raise
        raise WorkerLostError(
            f"Training stopped in epoch {run.epoch + 1} because a "
            "collective operation failed: another worker stopped or "
            f"stopped responding ({_error_summary(error)}). The last "
            f"checkpoint ({_checkpoint_epochs(run.checkpoint)} epoch(s) "
            f"done) is in {run.checkpoint.folder!r}: start every worker "
            "again with the same command to resume from it."
        ) from error
    return run.finish()


class _DistributedRun:
    """The state of one distributed training run, from set-up to finish."""

    def __init__(self, name, strategy_name, precision, devices, tpu,
                 collective_timeout, options):
        from training import trainer
        from training.recipes import resolve_recipe
        from zoo import datasets
        from zoo.registry import get_spec

        self.spec = get_spec(name)
        self.options = options
        self.precision = precision
        self.hyperparameters = self.spec.hyperparameters(
            options.get("overrides"))
        self.strategy, self.strategy_name = make_strategy(
            strategy_name, devices=devices, tpu=tpu,
            collective_timeout=collective_timeout)
        multi_worker = self.strategy_name == "multi-worker"
        self.chief = is_chief() if multi_worker else True
        self.num_workers = num_workers_of(self.strategy)
        self.settings = trainer._settings(
            self.spec, **{key: options.get(key) for key in (
                "epochs", "batch_size", "learning_rate", "steps_per_epoch",
                "patience")}, seed=options.get("seed") or 0)
        self.bundle = datasets.load(
            options.get("dataset") or self.spec.dataset,
            data_dir=options.get("data_dir"),
            download=bool(options.get("download")))
        self.plan = plan_batches(
            int(self.settings["batch_size"]),
            self.strategy.num_replicas_in_sync, len(self.bundle.train),
            self.settings.get("steps_per_epoch"))
        self.settings["batch_size"] = self.plan.global_batch_size

        run_dir = options.get("run_dir")
        if run_dir is None and multi_worker:
            raise ValueError(
                "Multi-worker training needs `--run-dir` on storage that "
                "every worker shares, so that the workers agree on the run "
                "folder and a rerun resumes from its checkpoint."
            )
        self.run_dir = run_dir or trainer.new_run_dir(
            name, options.get("runs_root") or "runs")
        augment = options.get("augment")
        config = {
            "model": name,
            "dataset": self.bundle.name,
            "hyperparameters": self.hyperparameters,
            "settings": self.settings,
            "weights": options.get("weights"),
            "augment": augment if isinstance(augment, str) else None,
            "strategy": self.strategy_name,
            "precision": precision,
            "num_replicas": self.plan.num_replicas,
            "num_workers": self.num_workers,
            "command": " ".join(sys.argv),
        }
        if self.chief:
            os.makedirs(self.run_dir, exist_ok=True)
        _check_run_dir(self.run_dir, config)

        trainer.set_seed(int(self.settings["seed"]))
        self.recipe = resolve_recipe(self.spec, self.settings)
        self.recipe.run_dir = self.run_dir if self.chief else None
        if isinstance(augment, str):
            from training import augment as augment_module

            augment = augment_module.build_pipeline(
                augment, seed=self.settings["seed"])
        # The recipe's own `fit` reads the steps of an epoch (a SOM's
        # schedule spans them), which the plan fixes.
        self.recipe.settings["steps_per_epoch"] = self.plan.steps_per_epoch
        self.recipe_train_data, self.validation_data, self.test_data = \
            self.recipe.datasets(self.bundle, augment)
        train_data = training_dataset(self.recipe_train_data, self.plan)

        with self.strategy.scope():
            self.model = self._build()
            check_loss_scaling(self.model, precision)
            build_training_state(self.model, next(iter(train_data)))
        self.evaluation_model = self._build()
        input_model = getattr(self.recipe, "input_model",
                              self.recipe.serving_model)
        trainer.check_input_shape(self.spec,
                                  input_model(self.evaluation_model),
                                  self.bundle)
        self.user_callbacks = list(options.get("callbacks") or ())
        self.callbacks = None
        if self.chief:
            trainer.write_json(os.path.join(self.run_dir, "config.json"),
                               config)

        self.distributed_data = \
            self.strategy.experimental_distribute_dataset(train_data)
        self.train_function = make_train_function(self.strategy, self.model)
        self.checkpoint = Checkpoint(
            os.path.join(self.run_dir, CHECKPOINT_FOLDER), chief=self.chief)
        self.history = {}
        self.epoch = self.start_epoch = 0
        self.best_value, self.best_epoch = None, 0
        self.best_weights, self.wait = None, 0
        self.timed_samples, self.timed_seconds = 0, 0.0
        self.train_seconds = 0.0

    def _build(self):
        """Build and compile the model in the current strategy scope."""
        weights = self.options.get("weights")
        if weights is None:
            model = self.spec.build(**self.hyperparameters)
        else:
            from zoo import hub

            model = hub.load_pretrained(
                self.spec.name, weights, compile=False,
                **(self.options.get("overrides") or {}))
        self.recipe.compile(model)
        return model

    def restore(self):
        """Resume from the checkpoint, if any, and check the workers agree.
        """
        import numpy as np

        state = self.checkpoint.load()
        if state is not None:
            self.best_weights = self.checkpoint.restore(self.model, state)
            self.start_epoch = self.epoch = state["epoch"]
            self.history = state["history"]
            self.best_value = state["best_value"]
            self.best_epoch, self.wait = state["best_epoch"], state["wait"]
            logger.info("Resumed from %s: %d epoch(s) done",
                        self.checkpoint.folder, self.start_epoch)
        if self.num_workers > 1:
            seen = gather_values(self.strategy, self.start_epoch)
            if np.any(seen != self.start_epoch):
                raise ValueError(
                    "The workers found checkpoints of different epochs "
                    f"{sorted(set(seen.astype(int).tolist()))} in "
                    f"{self.checkpoint.folder!r}. The run folder must be on "
                    "storage that every worker shares."
                )
        # Each new iterator draws the next shuffling order, so discarding
        # one per finished epoch lets a resumed run see the batches that an
        # uninterrupted run would.
        for _ in range(self.start_epoch):
            iter(self.distributed_data)

    def run_recipe(self):
        """Run the recipe's `fit` with `model.fit` replaced by the loop.

        Recipes prepare the model in `fit` before calling `model.fit`
        (a forecaster's standardization, a SOM's schedule) and add their
        own callbacks (a GAN's Fréchet distance and sample grids). Calling
        the recipe keeps all of it. A recipe that trains without
        `model.fit` (a Hopfield memory storing patterns) runs as it is.
        """
        import keras

        called = []

        def distributed_fit(x=None, validation_data=None, callbacks=None,
                            **ignored):
            # The loop feeds its own distributed copy of the training
            # data, so `x` and the epoch arguments are the recipe's echo
            # of what the loop already has.
            called.append(True)
            self.callbacks = keras.callbacks.CallbackList(
                list(callbacks or ()) + self.user_callbacks,
                model=self.model, epochs=int(self.settings["epochs"]),
                steps=self.plan.steps_per_epoch, verbose=0)
            self.fit()
            history = keras.callbacks.History()
            history.set_model(self.model)
            history.history = {k: list(v) for k, v in self.history.items()}
            history.epoch = list(range(len(next(
                iter(self.history.values()), []))))
            return history

        self.model.fit = distributed_fit
        try:
            returned = self.recipe.fit(self.model, self.recipe_train_data,
                                       self.validation_data, [])
        finally:
            del self.model.fit
        if not called:
            logger.info("Recipe %s trained without `model.fit`; its "
                        "history is kept as it returned it.",
                        type(self.recipe).__name__)
            self.history = {key: [float(v) for v in values] for key, values
                            in getattr(returned, "history", {}).items()}

    def fit(self):
        """Train until the last epoch, early stopping or a NaN."""
        plan = self.plan
        logger.info(
            "Training %s with %s (%d replica(s) on %d worker(s), %s): "
            "global batch %d, %d per replica, %d steps per epoch",
            self.spec.name, self.strategy_name, plan.num_replicas,
            self.num_workers, self.precision, plan.global_batch_size,
            plan.per_replica_batch_size, plan.steps_per_epoch)
        started = time.perf_counter()
        first_epoch_seconds = 0.0
        self.callbacks.on_train_begin()
        logs = {}
        for epoch in range(self.start_epoch, int(self.settings["epochs"])):
            self.epoch = epoch
            self.callbacks.on_epoch_begin(epoch)
            epoch_started = time.perf_counter()
            logs = self._train_epoch()
            seconds = time.perf_counter() - epoch_started
            # The first epoch of a process traces the step function.
            if epoch == self.start_epoch:
                first_epoch_seconds = seconds
            else:
                self.timed_samples += \
                    plan.steps_per_epoch * plan.global_batch_size
                self.timed_seconds += seconds
            logs.update(self._validate())
            # Callbacks may add values to the logs, such as a GAN's
            # Fréchet distance that selects its best epoch. They get this
            # dict itself, because `CallbackList` would pass them a copy.
            for callback in self.callbacks.callbacks:
                callback.on_epoch_end(epoch, logs)
            logs = {key: float(value) for key, value in logs.items()}
            stop = self._update_best(logs)
            if self.chief:
                _write_history(os.path.join(self.run_dir, "history.csv"),
                               self.history)
            self.checkpoint.save(self.model, {
                "epoch": epoch + 1, "history": self.history,
                "best_value": self.best_value,
                "best_epoch": self.best_epoch, "wait": self.wait},
                self.best_weights)
            if stop:
                break
        self.callbacks.on_train_end(logs)
        self.train_seconds = time.perf_counter() - started
        if self.timed_seconds == 0.0:
            self.timed_samples = plan.steps_per_epoch * plan.global_batch_size
            self.timed_seconds = first_epoch_seconds

    def _train_epoch(self):
        """Run one epoch of distributed steps; return the training metrics.
        """
        self.model.reset_metrics()
        iterator = iter(self.distributed_data)
        for step in range(self.plan.steps_per_epoch):
            self.callbacks.on_train_batch_begin(step)
            self.train_function(iterator)
            # Per-step metrics would cost a collective, so none are passed.
            self.callbacks.on_train_batch_end(step, {})
        # Reading synchronized-on-read metrics sums them over replicas.
        return {key: float(value) for key, value in
                self.model.get_metrics_result().items()}

    def _validate(self):
        """Evaluate the undistributed copy; return `val_` metrics."""
        self.evaluation_model.set_weights(self.model.get_weights())
        results = self.evaluation_model.evaluate(
            self.validation_data, verbose=0, return_dict=True)
        return {f"val_{k}": float(v) for k, v in results.items()}

    def _update_best(self, logs):
        """Record `logs`, track the best epoch; return whether to stop."""
        import numpy as np

        epoch = self.epoch
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        logger.info("epoch %d/%d: %s", epoch + 1, self.settings["epochs"],
                    ", ".join(f"{k}={v:.4f}" for k, v in
                              sorted(logs.items())))
        monitor = self.recipe.monitor
        stop = not _finite(logs)
        if stop:
            logger.error("Epoch %d gave a non-finite value %s; training "
                         "stops.", epoch + 1, logs)
        elif monitor not in logs:
            if epoch == self.start_epoch:
                logger.warning("Monitored value %r is not among %s; the "
                               "last epoch counts as the best.", monitor,
                               sorted(logs))
            self.best_epoch, self.best_weights, self.wait = epoch + 1, \
                None, 0
        elif _is_better(logs[monitor], self.best_value,
                        self.recipe.monitor_mode):
            self.best_value, self.best_epoch = logs[monitor], epoch + 1
            self.best_weights = [np.array(w)
                                 for w in self.model.get_weights()]
            self.wait = 0
        else:
            self.wait += 1
            stop = self.wait >= int(self.settings["patience"])
        if self.num_workers > 1:
            # A collective makes the decision common to all workers.
            stop = bool(np.any(gather_values(self.strategy, float(stop))))
        return stop

    def finish(self):
        """Evaluate the best weights, write the run's files, return it."""
        from training import trainer

        # Equal digests on every worker show that their weights are equal.
        logger.info("Final weights sha256: %s", weights_digest(self.model))
        evaluation_model = self.evaluation_model
        evaluation_model.set_weights(
            self.best_weights if self.best_weights is not None
            else self.model.get_weights())
        copy_optimizer_state(self.model, evaluation_model)
        metrics = self.recipe.evaluate(evaluation_model, self.test_data,
                                       self.bundle)
        metrics.update({
            "train_seconds": self.train_seconds,
            "epochs_run": len(next(iter(self.history.values()), [])),
            "best_epoch": self.best_epoch,
            "train_samples_per_second": (
                self.timed_samples / self.timed_seconds
                if self.timed_seconds else 0.0),
            "global_batch_size": self.plan.global_batch_size,
            "num_replicas": self.plan.num_replicas,
            "num_workers": self.num_workers,
        })
        if self.chief:
            from training.callbacks import plot_history

            _save_model_atomic(evaluation_model,
                               os.path.join(self.run_dir, "best.keras"))
            plot_history({key: list(enumerate(values, start=1))
                          for key, values in self.history.items()},
                         os.path.join(self.run_dir, "curves.png"))
            trainer.write_json(os.path.join(self.run_dir, "metrics.json"),
                               metrics)
            self.checkpoint.delete()
        logger.info("Run %s finished: %s", self.run_dir, metrics)
        return trainer.TrainResult(
            model=evaluation_model, spec=self.spec, run_dir=self.run_dir,
            metrics=metrics, history=self.history, settings=self.settings,
            hyperparameters=self.hyperparameters, bundle=self.bundle,
            recipe=self.recipe,
        )


def _error_summary(error):
    """Return the informative line of a TensorFlow runtime error."""
    import re

    # Drop the `{{function_node ...}}` prefix naming the op's graph.
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for marker in ("unhealthy", "timed out", "Deadline", "aborted",
                   "Socket closed", "connect"):
        for index, line in enumerate(lines):
            if marker in line:
                # A line ending in ":" names the tasks on the next one.
                if line.endswith(":") and index + 1 < len(lines):
                    line = f"{line} {lines[index + 1]}"
                return f"{type(error).__name__}: {line}"
    return type(error).__name__


def weights_digest(model):
    """Return the SHA-256 hex digest of `model`'s weight values."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for value in model.get_weights():
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _checkpoint_epochs(checkpoint):
    """Return the epochs done in `checkpoint`, 0 when there is none."""
    state = checkpoint.load()
    return 0 if state is None else int(state["epoch"])
