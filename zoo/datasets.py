"""Embedded data sets as arrays and `tf.data` pipelines.

The embedded data sets ship inside installed packages, so they load with no
network: scikit-learn's digits (1797 real 8x8 handwritten digits), iris,
wine and diabetes, and statsmodels' macrodata and sunspots. Any other name
goes to tensorflow-datasets, which needs a network or a prepared `data_dir`.
"""

import dataclasses
import difflib
import logging
import os
from typing import Any, Callable

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_SPLIT_SEED = 0


@dataclasses.dataclass
class Split:
    """Features `x` and targets `y` of one split, as NumPy arrays."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self):
        return len(self.x)


@dataclasses.dataclass
class DataBundle:
    """A data set split into train, validation and test parts.

    Attributes:
        name: Data set name as passed to `load`.
        task: Task the targets are for (a `zoo.registry.TASKS` entry).
        train, validation, test: The three `Split`s.
        num_classes: Number of classes for classification, else `None`.
        class_names: Class labels, when known.
        info: Free-form facts: source, split sizes, scaling, seed.
    """

    name: str
    task: str
    train: Split
    validation: Split
    test: Split
    num_classes: int | None = None
    class_names: tuple = ()
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def input_shape(self):
        return tuple(self.train.x.shape[1:])


@dataclasses.dataclass(frozen=True)
class SeriesData:
    """A time series loaded in chronological order.

    Attributes:
        name: Data set name.
        values: Array `(time, num_series)` of float32 values.
        columns: Name of each series (column).
        index: Label of each time step (a year, or `"1959Q1"`).
        info: Source and frequency.
    """

    name: str
    values: np.ndarray
    columns: tuple
    index: tuple
    info: dict = dataclasses.field(default_factory=dict)


_LOADERS: dict[str, Callable[..., Any]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_dataset(name, description):
    """Register an embedded data set loader under `name` (a decorator)."""

    def decorator(loader):
        _LOADERS[name] = loader
        _DESCRIPTIONS[name] = description
        return loader

    return decorator


def list_datasets():
    """Return `{name: description}` of the embedded data sets."""
    return dict(sorted(_DESCRIPTIONS.items()))


def _stratified_split(x, y, seed, fractions=(0.7, 0.15, 0.15), stratify=True):
    from sklearn.model_selection import train_test_split

    _, validation_fraction, test_fraction = fractions
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed,
        stratify=y if stratify else None,
    )
    relative = validation_fraction / (1.0 - test_fraction)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=relative, random_state=seed,
        stratify=y_rest if stratify else None,
    )
    return Split(x_train, y_train), Split(x_val, y_val), Split(x_test, y_test)


def _digits(seed, flat):
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel intensities are integers 0..16; scale to [0, 1].
    images = (digits.images / 16.0).astype("float32")
    x = images.reshape(len(images), 64) if flat else images[..., None]
    y = digits.target.astype("int32")
    train, validation, test = _stratified_split(x, y, seed)
    return DataBundle(
        name="digits-flat" if flat else "digits",
        task="image-classification",
        train=train,
        validation=validation,
        test=test,
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        info={
            "source": "sklearn.datasets.load_digits (UCI optical digits)",
            "scaling": "pixel / 16, in [0, 1]",
            "split": "stratified 70/15/15",
            "seed": seed,
        },
    )


@register_dataset("digits", "1797 8x8 handwritten digits as (8, 8, 1) "
                  "images in [0, 1], 10 classes (scikit-learn)")
def _load_digits(seed=DEFAULT_SPLIT_SEED):
    return _digits(seed, flat=False)


@register_dataset("digits-flat", "the digits as 64 features in [0, 1], "
                  "10 classes (scikit-learn)")
def _load_digits_flat(seed=DEFAULT_SPLIT_SEED):
    return _digits(seed, flat=True)


def _tabular_classification(name, loader, seed, source):
    from sklearn.preprocessing import StandardScaler

    data = loader()
    x = data.data.astype("float32")
    y = data.target.astype("int32")
    train, validation, test = _stratified_split(x, y, seed)
    # Standardize with statistics of the training part only.
    scaler = StandardScaler().fit(train.x)
    for part in (train, validation, test):
        part.x = scaler.transform(part.x).astype("float32")
    return DataBundle(
        name=name,
        task="classification",
        train=train,
        validation=validation,
        test=test,
        num_classes=int(y.max()) + 1,
        class_names=tuple(str(c) for c in data.target_names),
        info={"source": source, "split": "stratified 70/15/15",
              "scaling": "standardized on train", "seed": seed},
    )


@register_dataset("iris", "150 iris flowers, 4 features, 3 classes "
                  "(scikit-learn)")
def _load_iris(seed=DEFAULT_SPLIT_SEED):
    from sklearn.datasets import load_iris

    return _tabular_classification("iris", load_iris, seed,
                                   "sklearn.datasets.load_iris")


@register_dataset("wine", "178 wines, 13 chemical features, 3 classes "
                  "(scikit-learn)")
def _load_wine(seed=DEFAULT_SPLIT_SEED):
    from sklearn.datasets import load_wine

    return _tabular_classification("wine", load_wine, seed,
                                   "sklearn.datasets.load_wine")


@register_dataset("diabetes", "442 diabetes patients, 10 features, "
                  "disease progression target (scikit-learn)")
def _load_diabetes(seed=DEFAULT_SPLIT_SEED):
    from sklearn.datasets import load_diabetes
    from sklearn.preprocessing import StandardScaler

    data = load_diabetes()
    x = data.data.astype("float32")
    y = data.target.astype("float32")
    train, validation, test = _stratified_split(x, y, seed, stratify=False)
    scaler = StandardScaler().fit(train.x)
    mean, std = float(train.y.mean()), float(train.y.std())
    for part in (train, validation, test):
        part.x = scaler.transform(part.x).astype("float32")
        part.y = ((part.y - mean) / std).astype("float32")[:, None]
    return DataBundle(
        name="diabetes",
        task="regression",
        train=train,
        validation=validation,
        test=test,
        info={"source": "sklearn.datasets.load_diabetes",
              "split": "random 70/15/15",
              "scaling": "features and target standardized on train",
              "target_mean": mean, "target_std": std, "seed": seed},
    )


@register_dataset("sunspots", "yearly sunspot numbers 1700-2008 as windows "
                  "of 24 years, target the next year (statsmodels)")
def _load_sunspots_windows(seed=DEFAULT_SPLIT_SEED):
    from zoo import series

    return series.load_windows("sunspots", seed=seed)


@register_dataset("macrodata", "US quarterly macro series 1959-2009 as "
                  "windows of 8 quarters, targets next-quarter GDP growth "
                  "and inflation (statsmodels)")
def _load_macrodata_windows(seed=DEFAULT_SPLIT_SEED):
    from zoo import series

    return series.load_windows("macrodata", seed=seed)


@register_dataset("digits-sequence", "the digits as sequences of 8 rows of "
                  "8 pixels in [0, 1], 10 classes (scikit-learn)")
def _load_digits_sequence(seed=DEFAULT_SPLIT_SEED):
    from zoo import series

    return series.digits_sequences(seed=seed)


def load_series(name):
    """Load an embedded time series in chronological order.

    Args:
        name: `"sunspots"` (yearly sunspot numbers, 1700-2008) or
            `"macrodata"` (US quarterly macroeconomic series, 1959-2009).

    Returns:
        A `SeriesData`.
    """
    if name == "sunspots":
        from statsmodels.datasets import sunspots

        frame = sunspots.load_pandas().data
        return SeriesData(
            name=name,
            values=frame[["SUNACTIVITY"]].to_numpy("float32"),
            columns=("SUNACTIVITY",),
            index=tuple(int(year) for year in frame["YEAR"]),
            info={"source": "statsmodels.datasets.sunspots",
                  "frequency": "yearly"},
        )
    if name == "macrodata":
        from statsmodels.datasets import macrodata

        frame = macrodata.load_pandas().data
        columns = tuple(c for c in frame.columns if c not in ("year",
                                                              "quarter"))
        index = tuple(f"{int(y)}Q{int(q)}"
                      for y, q in zip(frame["year"], frame["quarter"]))
        return SeriesData(
            name=name,
            values=frame[list(columns)].to_numpy("float32"),
            columns=columns,
            index=index,
            info={"source": "statsmodels.datasets.macrodata",
                  "frequency": "quarterly"},
        )
    raise ValueError(
        f"Unknown time series {name!r}. Embedded series: sunspots, macrodata"
    )


def load(name, seed=DEFAULT_SPLIT_SEED, data_dir=None, download=False,
         **options):
    """Load data set `name` split into train, validation and test.

    Args:
        name: An embedded data set (see `list_datasets()`), or a
            tensorflow-datasets name such as `"mnist"`.
        seed: Seed of the split. Defaults to 0, so every run and every
            pretrained artifact uses the same split.
        data_dir: tensorflow-datasets data directory. Defaults to TFDS's own
            (`TFDS_DATA_DIR`, else `~/tensorflow_datasets`).
        download: Let tensorflow-datasets download missing data. Defaults to
            `False`, so nothing reaches the network unless asked.
        **options: Passed to the embedded loader.

    Returns:
        A `DataBundle`.
    """
    if name not in _LOADERS:
        # Model families register their own data sets when imported.
        import zoo.models  # noqa: F401
    if name in _LOADERS:
        return _LOADERS[name](seed=seed, **options)
    return _load_tfds(name, seed=seed, data_dir=data_dir, download=download)


def _load_tfds(name, seed, data_dir, download):
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise ValueError(
            f"Data set {name!r} is not embedded and tensorflow-datasets is "
            "not installed. Install it with `pip install "
            "tensorflow-datasets`."
        ) from error

    embedded = ", ".join(sorted(_LOADERS))
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # TFDS raises DatasetNotFoundError and others
        close = difflib.get_close_matches(name, list(_LOADERS), n=3,
                                          cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown data set {name!r}.{hint} Embedded data sets: "
            f"{embedded}. Other names must be tensorflow-datasets names "
            "(see `tfds.list_builders()`)."
        ) from error

    where = data_dir or os.environ.get("TFDS_DATA_DIR") or \
        "~/tensorflow_datasets"
    if not download and not _tfds_prepared(builder):
        raise ValueError(
            f"Data set {name!r} is not prepared in the tensorflow-datasets "
            f"data_dir {where!r}, and downloading is off. Either pass "
            f"`--data-dir` pointing to a folder where `tfds build {name}` "
            "has run, or allow the download with `--download` on a machine "
            "with network access."
        )
    try:
        if download:
            builder.download_and_prepare()
        splits = builder.as_dataset(as_supervised=True, batch_size=-1)
    except Exception as error:
        raise ValueError(
            f"tensorflow-datasets could not load {name!r} from {where!r}: "
            f"{error}. Prepare it on a machine with network access "
            f"(`tfds build {name} --data_dir DIR`) and pass `--data-dir DIR`."
        ) from error

    def to_split(dataset):
        x, y = tfds.as_numpy(dataset)
        x = np.asarray(x)
        if x.dtype == np.uint8:
            x = (x / 255.0).astype("float32")
        return Split(x, np.asarray(y).astype("int32"))

    train = to_split(splits["train"])
    test = to_split(splits.get("test", splits["train"]))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    cut = int(0.9 * len(order))
    validation = Split(train.x[order[cut:]], train.y[order[cut:]])
    train = Split(train.x[order[:cut]], train.y[order[:cut]])
    num_classes = None
    label = builder.info.features["label"] if "label" in \
        builder.info.features else None
    if label is not None and hasattr(label, "num_classes"):
        num_classes = label.num_classes
    return DataBundle(
        name=name, task="image-classification", train=train,
        validation=validation, test=test, num_classes=num_classes,
        info={"source": f"tensorflow-datasets {name}", "seed": seed},
    )


def _tfds_prepared(builder):
    import tensorflow as tf

    return tf.io.gfile.exists(os.path.join(builder.data_dir,
                                           "dataset_info.json"))


def as_dataset(split, batch_size, shuffle=False, seed=None, augment=None,
               drop_remainder=False, repeat=False):
    """Turn a `Split` into a batched, prefetched `tf.data.Dataset`.

    Args:
        split: The `Split` to serve.
        batch_size: Batch size.
        shuffle: Shuffle each epoch with `seed`. Defaults to `False`.
        seed: Shuffle seed. Defaults to `None`.
        augment: Optional function `(x, y) -> (x, y)` mapped on batches, as
            made by `training.augment.build_pipeline`. Defaults to `None`.
        drop_remainder: Drop the last partial batch (static shapes, as TPUs
            need). Defaults to `False`.
        repeat: Repeat forever. Defaults to `False`.

    Returns:
        A `tf.data.Dataset` yielding `(x, y)` batches.
    """
    import tensorflow as tf

    if batch_size <= 0:
        raise ValueError(
            f"`batch_size` must be a positive integer. Received: {batch_size}"
        )
    dataset = tf.data.Dataset.from_tensor_slices((split.x, split.y))
    if shuffle:
        dataset = dataset.shuffle(len(split), seed=seed,
                                  reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if augment is not None:
        dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE,
                              deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
