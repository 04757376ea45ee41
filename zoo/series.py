"""Windowed time series for forecasting, and the baselines to beat.

A forecasting data set here is a series cut into windows: the inputs are
the `window` steps before time `t` and the target is the value at `t`.
Windows are made by `keras.utils.timeseries_dataset_from_array`. The
series is split by time, never shuffled across the split points. A window
belongs to the part where its target lies. Its inputs may reach back into
the earlier part, as they would for a forecast made at that time.
Normalization statistics come from the training part only.

Two series ship with statsmodels:

- `sunspots`: yearly mean sunspot number, 1700-2008 (309 years). The model
  reads 24 years and forecasts the next one.
- `macrodata`: US quarterly macroeconomic data, 1959Q1-2009Q3 (203
  quarters). The features are six stationary transforms (annualized
  growth of real GDP, consumption and investment; inflation; unemployment;
  the 3-month T-bill rate). The model reads 8 quarters and forecasts the
  next quarter's real GDP growth and inflation.

Every forecast is compared with three baselines on the same test windows,
in the original units. Persistence repeats the last observed value, the
training mean is the mean of the training part, and AR(p) is an
autoregression fitted by least squares
(`statsmodels.tsa.ar_model.AutoReg`) on the training part of each target.
"""

import dataclasses
import logging

import numpy as np

logger = logging.getLogger(__name__)

SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
_MACRO_FEATURES = ("gdp_growth", "infl", "cons_growth", "inv_growth",
                   "unemp", "tbilrate")


@dataclasses.dataclass(frozen=True)
class SeriesConfig:
    """Windowing settings of one series.

    Attributes:
        window: Input steps per window.
        ar_order: Order `p` of the AR baseline (at most `window`).
        targets: Names of the forecast features.
    """

    window: int
    ar_order: int
    targets: tuple


SERIES = {
    # Sunspots: nine yearly lags. Macrodata: four quarters, one year.
    "sunspots": SeriesConfig(window=24, ar_order=9,
                             targets=("SUNACTIVITY",)),
    "macrodata": SeriesConfig(window=8, ar_order=4,
                              targets=("gdp_growth", "infl")),
}


def series_features(name):
    """Return `(values, columns, index)` of the features of series `name`.

    `values` is float32 `(time, features)` in the original units. For
    macrodata the features are stationary transforms of the raw columns,
    so one quarter is lost to the differences.
    """
    from zoo.datasets import load_series

    data = load_series(name)
    if name == "sunspots":
        return data.values, data.columns, data.index
    column = {c: data.values[:, i].astype("float64")
              for i, c in enumerate(data.columns)}

    def growth(values):
        # Annualized quarterly growth in percent.
        return 400.0 * np.diff(np.log(values))

    features = {
        "gdp_growth": growth(column["realgdp"]),
        "infl": column["infl"][1:],
        "cons_growth": growth(column["realcons"]),
        "inv_growth": growth(column["realinv"]),
        "unemp": column["unemp"][1:],
        "tbilrate": column["tbilrate"][1:],
    }
    values = np.stack([features[c] for c in _MACRO_FEATURES], axis=1)
    return values.astype("float32"), _MACRO_FEATURES, data.index[1:]


def split_points(length, window, fractions=SPLIT_FRACTIONS):
    """Return the first time step of validation and of test targets."""
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            "`fractions` must be three numbers summing to 1. "
            f"Received: fractions={fractions!r}"
        )
    validation_start = int(round(length * fractions[0]))
    test_start = int(round(length * (fractions[0] + fractions[1])))
    if validation_start <= window or test_start >= length:
        raise ValueError(
            f"A series of {length} steps is too short for windows of "
            f"{window} steps with split fractions {fractions}. Use a "
            "shorter `window`."
        )
    return validation_start, test_start


def window_dataset(features, targets, window, start, stop, batch_size=32,
                   shuffle=False, seed=None):
    """Return a `tf.data.Dataset` of `(window, target)` batches.

    Args:
        features: Array `(time, features)` of inputs.
        targets: Array `(time, targets)` aligned with `features`.
        window: Input steps per window.
        start: First time step whose target is included (`>= window`).
        stop: Time step after the last included target.
        batch_size: Windows per batch. Defaults to 32.
        shuffle: Shuffle the windows. Defaults to `False`.
        seed: Shuffle seed. Defaults to `None`.

    Returns:
        Batches of inputs `(batch, window, features)` with the steps
        `t - window .. t - 1`, and targets `(batch, targets)` at step `t`,
        for `start <= t < stop`.
    """
    import keras

    if not window <= start < stop <= len(features):
        raise ValueError(
            f"Target steps [{start}, {stop}) must satisfy window <= start < "
            f"stop <= {len(features)} for window={window}."
        )
    # Window i covers features[i : i + window] and predicts targets[i +
    # window]; the targets array is shifted so targets[i] is that value.
    # Keras takes `end_index` exclusive and below the data length, so the
    # last window of the series needs `None`.
    data = features[:-1]
    return keras.utils.timeseries_dataset_from_array(
        data=data,
        targets=targets[window:],
        sequence_length=window,
        start_index=start - window,
        end_index=stop - 1 if stop - 1 < len(data) else None,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
    )


def _materialize(dataset):
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in dataset))
    return np.concatenate(xs).astype("float32"), \
        np.concatenate(ys).astype("float32")


def load_windows(name, seed=0):
    """Load series `name` as a `DataBundle` of chronological windows.

    Args:
        name: `"sunspots"` or `"macrodata"`.
        seed: Stored in `info`. The split is chronological and random-free.

    Returns:
        A `DataBundle` of task `"time-series-forecasting"` whose splits hold
        windows `x` `(n, window, features)` and targets `y` `(n, targets)`
        in the original units. `info["series"]` has the normalization
        statistics of the training part and the baseline settings.
    """
    from zoo.datasets import DataBundle, Split

    if name not in SERIES:
        raise ValueError(
            f"Unknown windowed series {name!r}. Valid names: "
            f"{', '.join(sorted(SERIES))}"
        )
    config = SERIES[name]
    values, columns, index = series_features(name)
    target_index = [columns.index(t) for t in config.targets]
    targets = values[:, target_index]
    validation_start, test_start = split_points(len(values), config.window)
    bounds = {
        "train": (config.window, validation_start),
        "validation": (validation_start, test_start),
        "test": (test_start, len(values)),
    }
    splits = {}
    for part, (start, stop) in bounds.items():
        dataset = window_dataset(values, targets, config.window, start, stop,
                                 batch_size=256)
        splits[part] = Split(*_materialize(dataset))

    # Statistics of the training part only (no window overlap weighting).
    train_values = values[:validation_start].astype("float64")
    mean = train_values.mean(axis=0)
    std = train_values.std(axis=0)
    series_info = {
        "columns": list(columns),
        "targets": list(config.targets),
        "target_index": target_index,
        "window": config.window,
        "ar_order": config.ar_order,
        "feature_mean": mean.tolist(),
        "feature_std": std.tolist(),
        "target_mean": mean[target_index].tolist(),
        "target_std": std[target_index].tolist(),
        "train_series": targets[:validation_start].tolist(),
    }
    return DataBundle(
        name=name,
        task="time-series-forecasting",
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        info={
            "source": f"statsmodels.datasets.{name}",
            "split": "chronological 70/15/15 of the time steps",
            "target_steps": {
                part: f"{index[start]}..{index[stop - 1]}"
                for part, (start, stop) in bounds.items()
            },
            "scaling": "none in the data; models standardize with the "
                       "statistics of the training part",
            "series": series_info,
            "seed": seed,
        },
    )


def fit_autoregression(series, order):
    """Fit AR(`order`) with a constant by least squares on `series`.

    Args:
        series: 1-D array of the training part, oldest first.
        order: Number of lags `p`.

    Returns:
        Array `[constant, a_1, ..., a_p]` so that the forecast of `y_t` is
        `constant + sum_k a_k * y_{t-k}`.
    """
    from statsmodels.tsa.ar_model import AutoReg

    series = np.asarray(series, dtype="float64")
    if not isinstance(order, int) or not 1 <= order < len(series) // 2:
        raise ValueError(
            f"`order` must be an integer in [1, {len(series) // 2}) for a "
            f"series of {len(series)} steps. Received: order={order!r}"
        )
    return np.asarray(AutoReg(series, lags=order, trend="c").fit().params)


def baseline_forecasts(bundle, x):
    """Return `{baseline: forecasts (n, targets)}` for windows `x`.

    Args:
        bundle: A bundle from `load_windows`.
        x: Windows `(n, window, features)` in the original units.

    Returns:
        Forecasts of `"persistence"` (the last step of each window),
        `"mean"` (the training mean) and `"ar"` (AR(p) fitted on the
        training part), each `(n, targets)` in the original units.
    """
    info = bundle.info["series"]
    target_index = info["target_index"]
    order = info["ar_order"]
    train_series = np.asarray(info["train_series"], dtype="float64")
    history = np.asarray(x, dtype="float64")[:, :, target_index]
    forecasts = {
        "persistence": history[:, -1, :],
        "mean": np.broadcast_to(train_series.mean(axis=0),
                                history[:, -1, :].shape),
    }
    ar = np.empty_like(history[:, -1, :])
    for column in range(len(target_index)):
        params = fit_autoregression(train_series[:, column], order)
        # Lags y_{t-1} .. y_{t-p}: the last p steps, newest first.
        lags = history[:, ::-1, column][:, :order]
        ar[:, column] = params[0] + lags @ params[1:]
    forecasts["ar"] = ar
    return forecasts


def forecast_metrics(bundle, y_true, y_pred, prefix):
    """Return MAE and RMSE of forecasts, overall and per target.

    Args:
        bundle: A bundle from `load_windows` (for the target names).
        y_true: Targets `(n, targets)` in the original units.
        y_pred: Forecasts `(n, targets)` in the original units.
        prefix: Key prefix, such as `"test"` or `"persistence"`.

    Returns:
        `{f"{prefix}_mae": ..., f"{prefix}_rmse": ...}` plus
        `f"{prefix}_mae_{target}"` when there are several targets.
    """
    error = np.asarray(y_pred, "float64") - np.asarray(y_true, "float64")
    metrics = {
        f"{prefix}_mae": float(np.mean(np.abs(error))),
        f"{prefix}_rmse": float(np.sqrt(np.mean(error ** 2))),
    }
    targets = bundle.info["series"]["targets"]
    if len(targets) > 1:
        for column, target in enumerate(targets):
            metrics[f"{prefix}_mae_{target}"] = float(
                np.mean(np.abs(error[:, column])))
    return metrics


def baseline_metrics(bundle, split="test"):
    """Return the metrics of every baseline on `split` of `bundle`."""
    part = getattr(bundle, split)
    metrics = {}
    for baseline, forecast in baseline_forecasts(bundle, part.x).items():
        metrics.update(forecast_metrics(bundle, part.y, forecast, baseline))
    return metrics


def digits_sequences(seed=0):
    """Return the digits as sequences: 8 rows (steps) of 8 pixels.

    Args:
        seed: Seed of the stratified 70/15/15 split. Defaults to 0, the
            split of the `digits` data set.

    Returns:
        A `DataBundle` of task `"sequence-classification"` with `x` of
        shape `(n, 8, 8)` in [0, 1].
    """
    from zoo.datasets import load

    bundle = load("digits", seed=seed)
    for part in (bundle.train, bundle.validation, bundle.test):
        part.x = part.x[..., 0]
    bundle.name = "digits-sequence"
    bundle.task = "sequence-classification"
    bundle.info = {**bundle.info, "steps": "image rows, top to bottom"}
    return bundle
