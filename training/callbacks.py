"""Callbacks shared by every model of the zoo."""

import logging
import os

import keras

logger = logging.getLogger(__name__)


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


def default_callbacks(run_dir, monitor="val_loss", mode="min", patience=10):
    """Return the callbacks every `zoo train` run uses.

    Early stopping restores the best weights, the best model is saved to
    `best.keras`, the history goes to `history.csv`, training stops on a NaN
    loss, and `curves.png` plots the history at the end.

    Args:
        run_dir: Folder of the run.
        monitor: Metric that decides "best". Defaults to `"val_loss"`.
        mode: `"min"` or `"max"` for `monitor`. Defaults to `"min"`.
        patience: Epochs without improvement before stopping. Defaults to 10.
    """
    return [
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=patience,
            restore_best_weights=True,
        ),
        keras.callbacks.ModelCheckpoint(
            os.path.join(run_dir, "best.keras"), monitor=monitor, mode=mode,
            save_best_only=True,
        ),
        keras.callbacks.CSVLogger(os.path.join(run_dir, "history.csv")),
        TrainingCurves(os.path.join(run_dir, "curves.png")),
    ]
