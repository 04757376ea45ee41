"""Recipes of the sequence models: forecasters and sequence classifiers.

The models take two inputs, `sequence` and `padding_mask`. The data sets
hold fixed-length sequences, so the recipes feed a mask of ones. Serving
clients pad shorter sequences on the right and send zeros in the mask.

`ForecastRecipe` also sets the models' standardization layers from the
statistics of the training part before fitting, and evaluates forecasts in
the original units beside the baselines of `zoo.series` (persistence, the
training mean and AR(p)), computed on the same test windows in the same run.
"""

import logging

import numpy as np

from training.recipes import SupervisedRecipe

logger = logging.getLogger(__name__)


def with_padding_mask(x):
    """Return model inputs `{sequence, padding_mask}` for a batch `x`.

    Works on NumPy arrays and on tensors inside `tf.data` maps; every step
    is marked real.
    """
    import tensorflow as tf

    if isinstance(x, np.ndarray):
        mask = np.ones(x.shape[:2], dtype="int32")
    else:
        mask = tf.ones(tf.shape(x)[:2], dtype=tf.int32)
    return {"sequence": x, "padding_mask": mask}


def padded_sample(x, count):
    """Return `{sequence, padding_mask}` of `count` rows of `x`, with padding.

    Row `i` keeps its first `steps - (i % 3)` steps; the rest is zeroed and
    masked, so export checks also cover padded sequences.
    """
    x = np.array(x[:count], dtype="float32")
    steps = x.shape[1]
    lengths = np.maximum(steps - np.arange(len(x)) % 3, 1)
    mask = (np.arange(steps)[None, :] < lengths[:, None]).astype("int32")
    x[mask == 0] = 0.0
    return {"sequence": x, "padding_mask": mask}


class _SequenceRecipe(SupervisedRecipe):
    """Shared parts: the two-input pipelines and the cuDNN-free export."""

    def datasets(self, bundle, augment=None):
        """Return `(train, validation, test)` with `padding_mask` added."""
        train, validation, test = super().datasets(bundle, augment)

        def add_mask(x, y):
            return with_padding_mask(x), y

        return tuple(d.map(add_mask) for d in (train, validation, test))

    def serving_model(self, model):
        """Return `model` with cuDNN-free LSTM layers, for TF Serving."""
        from zoo.models.lstm import generic_lstm_model

        return generic_lstm_model(model)

    def sample_inputs(self, bundle, count=8):
        return padded_sample(bundle.test.x, count)


class SequenceClassifierRecipe(_SequenceRecipe):
    """Cross-entropy training of sequence classifiers; monitors accuracy."""

    monitor = "val_accuracy"
    monitor_mode = "max"


class ForecastRecipe(_SequenceRecipe):
    """Mean squared error training of forecasters, evaluated in the original
    units beside the persistence, training-mean and AR(p) baselines."""

    def datasets(self, bundle, augment=None):
        self._statistics = bundle.info["series"]
        return super().datasets(bundle, augment)

    def fit(self, model, train, validation, callbacks, initial_epoch=0):
        statistics = getattr(self, "_statistics", None)
        if statistics is not None:
            set_standardization(model, statistics)
        return super().fit(model, train, validation, callbacks,
                           initial_epoch=initial_epoch)

    def evaluate(self, model, test, bundle):
        """Return the model's and the baselines' test metrics.

        `test_loss` is the mean squared error in the original units.
        `test_mae` and `test_rmse` (and per target `test_mae_<target>`)
        come with `persistence_*`, `mean_*` and `ar_*` of the baselines.
        `mae_vs_persistence` is the model's MAE over persistence's.
        """
        from zoo import series

        metrics = super().evaluate(model, test, bundle)
        predictions = model.predict(with_padding_mask(bundle.test.x),
                                    verbose=0)
        metrics.update(series.forecast_metrics(bundle, bundle.test.y,
                                               predictions, "test"))
        metrics.update(series.baseline_metrics(bundle, "test"))
        metrics["mae_vs_persistence"] = \
            metrics["test_mae"] / metrics["persistence_mae"]
        return metrics


def set_standardization(model, statistics):
    """Set a forecaster's input and output standardization statistics.

    Args:
        model: A forecaster with `Normalization` layers `standardize`
            (inputs) and `forecast` (inverse, on the targets).
        statistics: `bundle.info["series"]` of `zoo.series.load_windows`.

    Raises:
        ValueError: the model does not have those layers, or their sizes
            do not match the data's features and targets.
    """
    pairs = (("standardize", "feature_mean", "feature_std"),
             ("forecast", "target_mean", "target_std"))
    for layer_name, mean_key, std_key in pairs:
        try:
            layer = model.get_layer(layer_name)
        except ValueError as error:
            raise ValueError(
                f"Model '{model.name}' has no layer named {layer_name!r}, "
                "so it cannot take the training statistics. Forecasters "
                "need Normalization layers 'standardize' and 'forecast'."
            ) from error
        mean = np.asarray(statistics[mean_key], dtype="float32")
        std = np.asarray(statistics[std_key], dtype="float32")
        if tuple(layer.adapt_mean.shape) != mean.shape:
            raise ValueError(
                f"Layer {layer_name!r} of model '{model.name}' standardizes "
                f"{layer.adapt_mean.shape[0]} values, but the data has "
                f"{mean.shape[0]}. Build the model with matching "
                "`num_features` and `num_targets` (`--set`)."
            )
        layer.adapt_mean.assign(mean)
        layer.adapt_variance.assign(std ** 2)
        layer.finalize_state()
    logger.info("Set standardization of %s from the training part",
                model.name)
