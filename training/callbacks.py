"""Callbacks shared by every model of the zoo.

`default_callbacks` assembles what every `zoo train` run uses. It stops on
NaN, sets the learning-rate schedule, stops early with the best weights
restored, and writes `best.keras`, `history.csv`, TensorBoard logs and
`curves.png`. It logs each epoch (or shows a progress bar), and its
`ResumableBackup` lets a killed run continue where it stopped.

`ImageGrid` writes a PNG grid of images that a function makes from the
model every few epochs; generative models use it for their samples.
"""

import glob
import json
import logging
import math
import os
import sys
import time

import keras
import numpy as np

from training.trainer import _json_ready

logger = logging.getLogger(__name__)

BACKUP_FOLDER = "backup"
LOCK_FILE = ".lock"
SCHEDULES = ("constant", "cosine", "plateau")


# --- files written atomically ----------------------------------------------

def _write_json_atomic(path, payload):
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        json.dump(payload, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


# --- image grids ------------------------------------------------------------

def save_image_grid(images, path, columns=None, value_range=(0.0, 1.0),
                    titles=None, cmap="gray"):
    """Write images side by side in one PNG.

    Args:
        images: Array `(count, height, width)` or `(count, height, width,
            channels)` with 1, 3 or 4 channels.
        path: PNG file to write. It is written to a temporary file first
            and renamed, so a reader never sees half a file.
        columns: Images per row. Defaults to `ceil(sqrt(count))`.
        value_range: `(low, high)` pixel values mapped to black and white.
            Defaults to `(0.0, 1.0)`; use `(-1.0, 1.0)` for tanh outputs.
        titles: Optional caption of each image. Defaults to none.
        cmap: Matplotlib colormap of one-channel images. Defaults to
            `"gray"`.

    Returns:
        `path`.
    """
    images = np.asarray(images, dtype="float32")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or len(images) == 0 or (
            images.ndim == 4 and images.shape[-1] not in (3, 4)):
        raise ValueError(
            "`images` must have shape (count, height, width) or (count, "
            "height, width, 1|3|4) with count >= 1. Received: shape="
            f"{images.shape}"
        )
    low, high = value_range
    if not high > low:
        raise ValueError(
            f"`value_range` must be (low, high) with high > low. Received: "
            f"{value_range!r}"
        )
    count = len(images)
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    scaled = np.clip((images - low) / (high - low), 0.0, 1.0)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(rows, columns, squeeze=False,
                                figsize=(1.2 * columns, 1.2 * rows + 0.2))
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= count:
            continue
        axis.imshow(scaled[index], cmap=cmap, vmin=0.0, vmax=1.0,
                    interpolation="nearest")
        if titles is not None:
            axis.set_title(str(titles[index]), fontsize=7)
    figure.tight_layout(pad=0.2)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.tmp.png"
    figure.savefig(temporary, dpi=80)
    plt.close(figure)
    os.replace(temporary, path)
    return path


class ImageGrid(keras.callbacks.Callback):
    """Write a PNG grid of images made from the model every N epochs.

    Args:
        path_pattern: PNG path, formatted with the 1-based `epoch`, such as
            `"runs/dcgan/samples/epoch-{epoch:03d}.png"`. A pattern without
            a field overwrites one file.
        make_images: Function `make_images(model) -> array` returning images
            `(count, height, width[, channels])`. To follow one set of
            samples through training, draw the latent batch once outside
            and close over it, for example
            `lambda model: model.generator(z, training=False)`.
        every_n_epochs: Epochs between two grids. Defaults to 1. The last
            epoch of training always gets a grid.
        columns: Images per row. Defaults to a square grid.
        value_range: `(low, high)` mapped to black and white. Defaults to
            `(0.0, 1.0)`; use `(-1.0, 1.0)` for tanh outputs.

    Example:

    ```python
    z = np.random.default_rng(0).normal(size=(16, 32)).astype("float32")
    grid = ImageGrid("samples/epoch-{epoch:03d}.png",
                     lambda model: model.generator(z, training=False),
                     every_n_epochs=5, value_range=(-1.0, 1.0))
    model.fit(data, epochs=20, callbacks=[grid])
    ```
    """

    def __init__(self, path_pattern, make_images, every_n_epochs=1,
                 columns=None, value_range=(0.0, 1.0)):
        super().__init__()
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(
                "`every_n_epochs` must be a positive integer. Received: "
                f"{every_n_epochs!r}"
            )
        if not callable(make_images):
            raise ValueError(
                "`make_images` must be a function of the model. Received: "
                f"{make_images!r}"
            )
        self.path_pattern = path_pattern
        self.make_images = make_images
        self.every_n_epochs = every_n_epochs
        self.columns = columns
        self.value_range = value_range
        self.written = []
        self._last_epoch = None
        self._seen_epoch = None

    def _write(self, epoch):
        images = keras.ops.convert_to_numpy(self.make_images(self.model))
        path = self.path_pattern.format(epoch=epoch)
        save_image_grid(images, path, columns=self.columns,
                        value_range=self.value_range)
        self.written.append(path)
        self._last_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs == 0:
            self._write(epoch + 1)
        self._seen_epoch = epoch + 1

    def on_train_end(self, logs=None):
        if self._seen_epoch is not None and \
                self._seen_epoch != self._last_epoch:
            self._write(self._seen_epoch)


# --- training curves --------------------------------------------------------

class TrainingCurves(keras.callbacks.Callback):
    """Write a PNG of every logged metric per epoch when training ends.

    Training and validation values of the same metric share one panel.

    Args:
        path: PNG file to write.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append((epoch + 1, float(value)))

    def on_train_end(self, logs=None):
        if self.history:
            plot_history(self.history, self.path)

    def get_resume_state(self):
        return {"history": self.history}

    def set_resume_state(self, state):
        self.history = {k: [tuple(p) for p in v]
                        for k, v in state["history"].items()}


def plot_history(history, path):
    """Plot `{metric: [(epoch, value), ...]}` into a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bases = sorted({k[4:] if k.startswith("val_") else k for k in history
                    if k != "learning_rate"})
    columns = min(len(bases), 3) or 1
    rows = (len(bases) + columns - 1) // columns or 1
    figure, axes = plt.subplots(rows, columns,
                                figsize=(4.5 * columns, 3.2 * rows),
                                squeeze=False)
    for axis, base in zip(axes.flat, bases):
        for key, style in ((base, "-"), (f"val_{base}", "--")):
            if key in history:
                epochs, values = zip(*history[key])
                axis.plot(epochs, values, style, label=key)
        axis.set_xlabel("epoch")
        axis.set_title(base)
        axis.legend()
    for axis in list(axes.flat)[len(bases):]:
        axis.axis("off")
    figure.tight_layout()
    temporary = f"{path}.tmp.png"
    figure.savefig(temporary, dpi=80)
    plt.close(figure)
    os.replace(temporary, path)


# --- TensorBoard --------------------------------------------------------------

class EpochTensorBoard(keras.callbacks.Callback):
    """Write each epoch's logs as TensorBoard scalars.

    The tags and folders are those of `keras.callbacks.TensorBoard` with
    `update_freq="epoch"` (`train/` and `validation/`, tags such as
    `epoch_loss`). Unlike it, this callback has no per-batch hook, so it
    adds no work to training steps; use Keras' callback for graphs,
    histograms or profiling.

    Args:
        log_dir: Folder of the event files.
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = log_dir
        self._writers = {}

    def _writer(self, name):
        import tensorflow as tf

        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(
                os.path.join(self.log_dir, name))
        return self._writers[name]

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        for key, value in (logs or {}).items():
            folder, tag = ("validation", key[4:]) if key.startswith(
                "val_") else ("train", key)
            with self._writer(folder).as_default():
                tf.summary.scalar(f"epoch_{tag}", float(value), step=epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


# --- best model file --------------------------------------------------------

class SaveBestModel(keras.callbacks.Callback):
    """Write the model to a `.keras` file once, when training ends.

    Put it after `EarlyStopping(restore_best_weights=True)`, which restores
    the best epoch's weights in its own `on_train_end`, so the file contains
    the best model. Saving once, instead of at every improvement as
    `keras.callbacks.ModelCheckpoint` does, keeps per-epoch cost low; the
    best weights of an interrupted run are kept by `ResumableBackup`.
    The file is written aside and renamed into place, so a kill never
    leaves a truncated `best.keras`.

    Args:
        path: Target `.keras` file.
    """

    def __init__(self, path):
        super().__init__()
        if not path.endswith(".keras"):
            raise ValueError(
                f"`path` must end in .keras. Received: path={path!r}"
            )
        self.path = path

    def on_train_end(self, logs=None):
        temporary = f"{self.path[:-len('.keras')]}.tmp-{os.getpid()}.keras"
        try:
            self.model.save(temporary)
            os.replace(temporary, self.path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)


# --- history file -----------------------------------------------------------

class HistoryCSV(keras.callbacks.Callback):
    """Write the per-epoch logs to a CSV file, rewritten after each epoch.

    Unlike `keras.callbacks.CSVLogger`, the rows are part of the resume
    state of `ResumableBackup`, so a resumed run's file has every epoch
    exactly once.

    Args:
        path: CSV file, with an `epoch` column (0-based, as Keras counts).
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.rows = []

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        self.rows.append(row)
        keys = ["epoch"] + sorted({k for r in self.rows for k in r} -
                                  {"epoch"})
        lines = [",".join(keys)]
        for r in self.rows:
            lines.append(",".join(
                repr(r[k]) if k in r and k != "epoch" else
                str(r.get(k, "")) for k in keys))
        temporary = f"{self.path}.tmp"
        with open(temporary, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(temporary, self.path)

    def get_resume_state(self):
        return {"rows": self.rows}

    def set_resume_state(self, state):
        self.rows = list(state["rows"])


# --- learning-rate schedules ------------------------------------------------

class WarmupCosineDecay(keras.callbacks.Callback):
    """Set the learning rate per step: linear warm-up, then cosine decay.

    The rate rises linearly to `learning_rate` over the warm-up steps, then
    follows half a cosine down to `min_learning_rate` at the last step of
    the last epoch. It is computed from `optimizer.iterations`, so a
    resumed run continues the schedule exactly.

    Args:
        learning_rate: Peak learning rate.
        epochs: Epochs of the whole run.
        warmup_epochs: Epochs of linear warm-up (may be fractional).
            Defaults to 0.
        min_learning_rate: Final learning rate. Defaults to 0.0.
        steps_per_epoch: Optimizer steps per epoch. Defaults to the `steps`
            that `fit` reports, which a data set of known size has.

    References:
        Loshchilov, Hutter (2017). SGDR: Stochastic Gradient Descent with
        Warm Restarts. https://arxiv.org/abs/1608.03983
        Goyal et al. (2017). Accurate, Large Minibatch SGD: Training
        ImageNet in 1 Hour. https://arxiv.org/abs/1706.02677
    """

    def __init__(self, learning_rate, epochs, warmup_epochs=0,
                 min_learning_rate=0.0, steps_per_epoch=None):
        super().__init__()
        if not learning_rate > 0:
            raise ValueError(
                f"`learning_rate` must be positive. Received: {learning_rate}"
            )
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(
                f"`epochs` must be a positive integer. Received: {epochs!r}"
            )
        if not 0 <= warmup_epochs < epochs:
            raise ValueError(
                "`warmup_epochs` must be in [0, epochs). Received: "
                f"{warmup_epochs!r} with epochs={epochs}"
            )
        if not 0 <= min_learning_rate <= learning_rate:
            raise ValueError(
                "`min_learning_rate` must be in [0, learning_rate]. "
                f"Received: {min_learning_rate!r}"
            )
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.warmup_epochs = warmup_epochs
        self.min_learning_rate = min_learning_rate
        self.steps_per_epoch = steps_per_epoch

    def on_train_begin(self, logs=None):
        steps = self.steps_per_epoch or (self.params or {}).get("steps")
        if not steps:
            raise ValueError(
                "The cosine schedule needs the number of steps per epoch, "
                "which this data set does not report. Pass "
                "`steps_per_epoch`."
            )
        self.total_steps = int(self.epochs * steps)
        self.warmup_steps = int(self.warmup_epochs * steps)

    def rate(self, step):
        """Return the learning rate at 0-based optimizer step `step`."""
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_learning_rate + (
            self.learning_rate - self.min_learning_rate) * cosine

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self.model.optimizer.learning_rate = self.rate(step)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


# --- epoch log lines and progress bar ---------------------------------------

class EpochLog(keras.callbacks.Callback):
    """Log one concise line per epoch: number, seconds and every metric.

    For output that is not a terminal (CI logs, `nohup`, pipes), where a
    progress bar would print a wall of control characters.
    """

    def on_train_begin(self, logs=None):
        self._epochs = self.params.get("epochs")

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._started
        metrics = " - ".join(f"{k}: {float(v):.4g}"
                             for k, v in sorted((logs or {}).items()))
        logger.info("epoch %d/%s - %.1fs - %s", epoch + 1, self._epochs,
                    seconds, metrics)


class ProgressBar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, shown even when `fit` runs with `verbose=0`."""

    def set_params(self, params):
        super().set_params({**params, "verbose": 1})


def progress_callback(stream=None):
    """Return `ProgressBar` on a terminal, else `EpochLog`.

    Args:
        stream: Stream to test. Defaults to `sys.stdout`.
    """
    stream = stream or sys.stdout
    isatty = getattr(stream, "isatty", None)
    return ProgressBar() if isatty is not None and isatty() else EpochLog()


# --- resumable training -----------------------------------------------------

def _keras_callback_state(callback):
    """Return the fields of a Keras callback that resuming must restore."""
    if isinstance(callback, keras.callbacks.EarlyStopping):
        return {"wait": callback.wait, "best": callback.best,
                "best_epoch": callback.best_epoch,
                "stopped_epoch": callback.stopped_epoch}
    if isinstance(callback, keras.callbacks.ModelCheckpoint):
        return {"best": callback.best}
    if isinstance(callback, keras.callbacks.ReduceLROnPlateau):
        return {"best": callback.best, "wait": callback.wait,
                "cooldown_counter": callback.cooldown_counter}
    if hasattr(callback, "get_resume_state"):
        return callback.get_resume_state()
    return None


def _set_callback_state(callback, state):
    if hasattr(callback, "set_resume_state"):
        callback.set_resume_state(state)
        return
    for key, value in state.items():
        setattr(callback, key, value)


def _single_optimizer(model):
    """Return whether `model.optimizer` is the model's only optimizer."""
    if getattr(model, "optimizer", None) is None:
        return False
    others = [value for value in vars(model).values()
              if isinstance(value, keras.optimizers.Optimizer)
              and value is not model.optimizer]
    return not others


def _save_snapshot(model, path):
    """Save the model's and its optimizer's variables to `path`.

    A model with one optimizer is saved as an `.npz` of its variables and
    the optimizer's, in tracking order, which takes about a tenth of the
    time of `save_weights` (3 ms against 25 ms for the digits CNN). Other
    models (a GAN with two optimizers) use `save_weights`.
    """
    if path.endswith(".npz"):
        values = [v.numpy() for v in model.variables] + [
            v.numpy() for v in model.optimizer.variables]
        with open(path, "wb") as handle:
            np.savez(handle, *values)
    else:
        model.save_weights(path, overwrite=True)


def _load_snapshot(model, path):
    """Restore the variables that `_save_snapshot` wrote to `path`."""
    if not path.endswith(".npz"):
        model.load_weights(path)
        return
    variables = list(model.variables) + list(model.optimizer.variables)
    with np.load(path) as arrays:
        if len(arrays.files) != len(variables):
            raise ValueError(
                f"Backup {path!r} has {len(arrays.files)} variables but the "
                f"model and optimizer have {len(variables)}. It belongs to "
                "another configuration; start a new run folder."
            )
        for index, variable in enumerate(variables):
            variable.assign(arrays[f"arr_{index}"])


def _optimizer_step(model):
    """Return the optimizer's iteration count, or -1 without an optimizer.

    Models with their own `train_step` and several optimizers (a GAN's)
    may leave `model.optimizer` unset; their optimizers are still saved
    with the model's weights when they are attributes of the model.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return -1
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


class ResumableBackup(keras.callbacks.Callback):
    """Back up the training state after each epoch and restore it on start.

    After every epoch it saves the model's and the optimizer's variables
    (iteration count and moments included), the epoch, the history, and
    the state of the other callbacks (early stopping's wait, best value
    and best weights, the checkpoint's best value, plateau counters, the
    CSV rows). When `fit` starts and a backup exists, it restores all of
    it and training continues with the next epoch. The backup folder is
    deleted when training ends normally.

    The files are written so that a kill at any moment (SIGKILL included)
    leaves a consistent backup: the weights go to a new file, then
    `state.json` is replaced atomically to point at it, then older files
    are removed.

    Put it last in the callback list: it must save after the other
    callbacks updated their state at the end of an epoch, and restore after
    they reset themselves in `on_train_begin`.

    Args:
        backup_dir: Folder of the backup.
        callbacks: The other callbacks whose state is saved. Keras's
            `EarlyStopping`, `ModelCheckpoint` and `ReduceLROnPlateau`, and
            any callback with `get_resume_state()`/`set_resume_state(state)`.
        delete_on_end: Remove the backup when training ends. Defaults to
            `True`.

    Note:
        The shuffling order and augmentation draws of a resumed epoch
        restart from those of the first epoch, so a resumed run is not
        bit-identical to an uninterrupted one, although its epoch count,
        optimizer state and history are continuous.
    """

    def __init__(self, backup_dir, callbacks=(), delete_on_end=True):
        super().__init__()
        self.backup_dir = backup_dir
        self.callbacks = list(callbacks)
        self.delete_on_end = delete_on_end
        self.restored_epoch = 0
        self._history = {}

    @property
    def state_path(self):
        return os.path.join(self.backup_dir, "state.json")

    def _early_stopping(self):
        for callback in self.callbacks:
            if isinstance(callback, keras.callbacks.EarlyStopping):
                return callback
        return None

    def on_train_begin(self, logs=None):
        self.restored_epoch = 0
        self._history = {}
        if not os.path.isfile(self.state_path):
            return
        with open(self.state_path) as handle:
            state = json.load(handle)
        if self.model.optimizer is not None and \
                not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        _load_snapshot(self.model,
                       os.path.join(self.backup_dir, state["weights"]))
        for index, callback in enumerate(self.callbacks):
            key = f"{index}:{type(callback).__name__}"
            if key in state["callbacks"]:
                _set_callback_state(callback, state["callbacks"][key])
        early_stopping = self._early_stopping()
        if early_stopping is not None and state.get("best_weights"):
            with np.load(os.path.join(self.backup_dir,
                                      state["best_weights"])) as arrays:
                early_stopping.best_weights = [
                    arrays[f"w{i}"] for i in range(len(arrays.files))]
        self._history = state["history"]
        history = getattr(self.model, "history", None)
        if isinstance(history, keras.callbacks.History):
            history.history = {k: list(v) for k, v in self._history.items()}
        self.restored_epoch = state["epoch"]
        self.model._initial_epoch = state["epoch"]
        logger.info(
            "Resumed from %s: %d epoch(s) done, optimizer step %d",
            self.backup_dir, state["epoch"],
            _optimizer_step(self.model),
        )

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        for key, value in (logs or {}).items():
            self._history.setdefault(key, []).append(float(value))
        suffix = "npz" if _single_optimizer(self.model) else "weights.h5"
        weights = f"epoch-{epoch + 1:04d}.{suffix}"
        temporary = os.path.join(self.backup_dir, f"tmp-{weights}")
        _save_snapshot(self.model, temporary)
        os.replace(temporary, os.path.join(self.backup_dir, weights))

        best_weights = None
        early_stopping = self._early_stopping()
        if early_stopping is not None and \
                early_stopping.best_weights is not None:
            best_weights = f"best-epoch-{early_stopping.best_epoch + 1:04d}.npz"
            path = os.path.join(self.backup_dir, best_weights)
            if not os.path.isfile(path):
                temporary = os.path.join(self.backup_dir, "tmp-best.npz")
                with open(temporary, "wb") as handle:
                    np.savez(handle, **{
                        f"w{i}": w
                        for i, w in enumerate(early_stopping.best_weights)})
                os.replace(temporary, path)

        states = {}
        for index, callback in enumerate(self.callbacks):
            state = _keras_callback_state(callback)
            if state is not None:
                states[f"{index}:{type(callback).__name__}"] = \
                    _json_ready(state)
        _write_json_atomic(self.state_path, {
            "epoch": epoch + 1,
            "weights": weights,
            "best_weights": best_weights,
            "optimizer_iterations": _optimizer_step(self.model),
            "callbacks": states,
            "history": self._history,
        })
        keep = {weights, best_weights, "state.json"}
        for path in glob.glob(os.path.join(self.backup_dir, "*")):
            if os.path.basename(path) not in keep:
                os.remove(path)

    def on_train_end(self, logs=None):
        logger.info(
            "Training ended after %d epoch(s) at optimizer step %d",
            len(next(iter(self._history.values()), [])),
            _optimizer_step(self.model),
        )
        if self.delete_on_end and os.path.isdir(self.backup_dir):
            for path in glob.glob(os.path.join(self.backup_dir, "*")):
                os.remove(path)
            os.rmdir(self.backup_dir)


# --- run folders that a rerun resumes ---------------------------------------

def _pid_alive(pid):
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _comparable(config):
    return {k: v for k, v in config.items() if k != "command"}


def find_unfinished_run(runs_root, name, config):
    """Return the latest unfinished run folder of `name` with `config`.

    A run folder is unfinished when it has `config.json` but no
    `metrics.json`, and no live process owns it (see `claim_run_dir`). Its
    config must equal `config`, ignoring the `command` entry, after a JSON
    round trip.

    Args:
        runs_root: Parent of the model's run folders.
        name: Registered model name.
        config: The config the new run would write to `config.json`.

    Returns:
        The folder, or `None` when there is none.
    """
    expected = _comparable(json.loads(json.dumps(_json_ready(config))))
    candidates = []
    for path in glob.glob(os.path.join(runs_root, name, "*", "config.json")):
        run_dir = os.path.dirname(path)
        if os.path.exists(os.path.join(run_dir, "metrics.json")):
            continue
        try:
            with open(path) as handle:
                found = _comparable(json.load(handle))
        except (OSError, json.JSONDecodeError):
            continue
        if found != expected or _owner_alive(run_dir):
            continue
        candidates.append((os.path.getmtime(path), run_dir))
    return max(candidates)[1] if candidates else None


def _owner_alive(run_dir):
    try:
        with open(os.path.join(run_dir, LOCK_FILE)) as handle:
            return _pid_alive(int(handle.read().strip()))
    except (OSError, ValueError):
        return False


def claim_run_dir(run_dir):
    """Mark `run_dir` as owned by this process, so no rerun resumes it.

    Raises:
        ValueError: another live process trains in `run_dir`.
    """
    if _owner_alive(run_dir):
        raise ValueError(
            f"Run folder {run_dir!r} is in use by another running training "
            "process. Wait for it to finish, or pass another `--run-dir`."
        )
    _write_json_atomic(os.path.join(run_dir, LOCK_FILE), os.getpid())


def release_run_dir(run_dir):
    """Remove this process's lock from a finished `run_dir`."""
    path = os.path.join(run_dir, LOCK_FILE)
    try:
        with open(path) as handle:
            owner = json.load(handle)
    except (OSError, ValueError):
        return
    if owner == os.getpid():
        os.remove(path)


# --- the default set --------------------------------------------------------

def default_callbacks(run_dir, monitor="val_loss", mode="min", patience=10,
                      *, epochs=None, steps_per_epoch=None,
                      learning_rate=None, schedule="constant",
                      warmup_epochs=0, tensorboard=True, resume=True,
                      progress=True):
    """Return the callbacks every `zoo train` run uses.

    In order: stop on a NaN loss, the learning-rate schedule, early
    stopping that restores the best weights, the best model saved to
    `best.keras`, the history in `history.csv`, TensorBoard logs in
    `tensorboard/`, `curves.png` at the end, a log line per epoch (a
    progress bar on a terminal), and last the resume backup in `backup/`.

    Args:
        run_dir: Folder of the run.
        monitor: Metric that decides "best". Defaults to `"val_loss"`.
        mode: `"min"` or `"max"` for `monitor`. Defaults to `"min"`.
        patience: Epochs without improvement before stopping. Defaults to 10.
        epochs: Epochs of the run; the cosine schedule needs it.
        steps_per_epoch: Optimizer steps per epoch of the cosine schedule.
            Defaults to the steps `fit` reports.
        learning_rate: Peak learning rate of the cosine schedule.
        schedule: `"constant"` (the optimizer's own rate), `"cosine"`
            (linear warm-up then cosine decay to 0) or `"plateau"` (divide
            the rate by 5 after `max(patience // 3, 1)` epochs without
            improvement). Defaults to `"constant"`.
        warmup_epochs: Warm-up epochs of the cosine schedule. Defaults to 0.
        tensorboard: Write TensorBoard logs. Defaults to `True`.
        resume: Add `ResumableBackup`. Defaults to `True`.
        progress: Add the epoch log or progress bar. Defaults to `True`.

    Returns:
        A list of `keras.callbacks.Callback`.
    """
    if schedule not in SCHEDULES:
        raise ValueError(
            f"`schedule` must be one of {', '.join(SCHEDULES)}. Received: "
            f"{schedule!r}"
        )
    callbacks = [keras.callbacks.TerminateOnNaN()]
    if schedule == "cosine":
        if not epochs or not learning_rate:
            raise ValueError(
                "The cosine schedule needs `epochs` and `learning_rate`. "
                f"Received: epochs={epochs!r}, "
                f"learning_rate={learning_rate!r}"
            )
        callbacks.append(WarmupCosineDecay(
            learning_rate, int(epochs), warmup_epochs=warmup_epochs,
            steps_per_epoch=steps_per_epoch))
    elif schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, mode=mode, factor=0.2,
            patience=max(patience // 3, 1), verbose=0))
    callbacks += [
        keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=patience,
            restore_best_weights=True,
        ),
        SaveBestModel(os.path.join(run_dir, "best.keras")),
        HistoryCSV(os.path.join(run_dir, "history.csv")),
    ]
    if tensorboard:
        callbacks.append(EpochTensorBoard(os.path.join(run_dir,
                                                       "tensorboard")))
    callbacks.append(TrainingCurves(os.path.join(run_dir, "curves.png")))
    if progress:
        callbacks.append(progress_callback())
    if resume:
        callbacks.append(ResumableBackup(os.path.join(run_dir, BACKUP_FOLDER),
                                         callbacks=list(callbacks)))
    return callbacks
