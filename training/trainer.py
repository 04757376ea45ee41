"""Train a registered model on its data set: the `zoo train` job.

`train` loads the data, builds the model, compiles it with its task's
recipe, fits it with the shared callbacks and evaluates it on the test
split, writing everything to a run directory:

    runs/<name>/<timestamp>/
        config.json     model, hyperparameters, settings, seed, data set
        history.csv     per-epoch metrics
        curves.png      training curves
        best.keras      the best model (by the recipe's monitored metric)
        metrics.json    test metrics of the restored best weights
"""

import dataclasses
import json
import logging
import os
import sys
import time

logger = logging.getLogger(__name__)

DEFAULT_SETTINGS = {
    "epochs": 20,
    "batch_size": 32,
    "learning_rate": 1e-3,
    "patience": 10,
    "seed": 0,
    "steps_per_epoch": None,
}


@dataclasses.dataclass
class TrainResult:
    """Result of `train`: the trained model, its metrics and run folder."""

    model: object
    spec: object
    run_dir: str
    metrics: dict
    history: dict
    settings: dict
    hyperparameters: dict
    bundle: object
    recipe: object


def new_run_dir(name, runs_root="runs"):
    """Create and return a fresh `runs_root/<name>/<timestamp>` folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = os.path.join(runs_root, name, stamp)
    path, suffix = base, 1
    while True:
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            suffix += 1
            path = f"{base}-{suffix}"


def set_seed(seed):
    """Seed Python, NumPy and TensorFlow and make TF ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def check_input_shape(spec, model, bundle):
    """Raise `ValueError` when the data does not fit the model's input."""
    expected = tuple(model.inputs[0].shape[1:]) if getattr(
        model, "inputs", None) else None
    if expected is None:
        return
    found = bundle.input_shape
    # A `None` axis of the model (such as a variable sequence length)
    # accepts any size.
    fits = len(expected) == len(found) and all(
        want is None or want == got for want, got in zip(expected, found))
    if not fits:
        raise ValueError(
            f"Data set '{bundle.name}' has inputs of shape {found}, but model "
            f"'{spec.name}' expects {expected}. Pick a data set of that "
            f"shape (`--dataset`), or set the model's input size with "
            f"`--set` (see `zoo info {spec.name}`)."
        )


CLASSIFICATION_TASKS = ("classification", "image-classification",
                        "sequence-classification", "set-classification")


def check_classes(spec, model, bundle):
    """Raise `ValueError` when the labels exceed the model's class count."""
    if spec.task not in CLASSIFICATION_TASKS or not getattr(
            model, "outputs", None):
        return
    units = model.outputs[0].shape[-1]
    labels = int(bundle.train.y.max()) + 1
    if units is not None and labels > units:
        raise ValueError(
            f"Data set '{bundle.name}' has labels 0..{labels - 1}, but model "
            f"'{spec.name}' outputs {units} classes. Set the class count "
            f"with `--set num_classes={labels}` or pick another data set."
        )


def _settings(spec, **given):
    settings = {**DEFAULT_SETTINGS, **dict(spec.training)}
    for key, value in given.items():
        if value is not None:
            settings[key] = value
    if int(settings["epochs"]) < 1:
        raise ValueError(
            f"`epochs` must be a positive integer. Received: "
            f"{settings['epochs']!r}"
        )
    if int(settings["batch_size"]) < 1:
        raise ValueError(
            f"`batch_size` must be a positive integer. Received: "
            f"{settings['batch_size']!r}"
        )
    return settings


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def write_json(path, payload):
    """Write `payload` as JSON through a temporary file and a rename."""
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        json.dump(_json_ready(payload), handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(temporary, path)


def train(
    name,
    *,
    dataset=None,
    epochs=None,
    batch_size=None,
    learning_rate=None,
    seed=0,
    overrides=None,
    run_dir=None,
    runs_root="runs",
    weights=None,
    augment=None,
    callbacks=(),
    steps_per_epoch=None,
    patience=None,
    data_dir=None,
    download=False,
    strategy=None,
    precision=None,
):
    """Train registered model `name` and evaluate it on the test split.

    Args:
        name: Registered model name.
        dataset: Data set name. Defaults to the record's data set.
        epochs: Maximum epochs. Defaults to the record's training setting.
        batch_size: Batch size. Defaults to the record's training setting.
        learning_rate: Learning rate. Defaults to the record's setting.
        seed: Seed of weights, shuffling and augmentation. Defaults to 0.
            The same seed gives the same run.
        overrides: Hyperparameters replacing the record's defaults.
        run_dir: Folder of the run. Defaults to a new
            `runs_root/<name>/<timestamp>`.
        runs_root: Parent of new run folders. Defaults to `"runs"`.
        weights: Pretrained weight tag to fine-tune from. Defaults to
            `None`, random initialization.
        augment: Augmentation spec string or a map function for the
            training batches. Defaults to `None`.
        callbacks: Extra Keras callbacks. Defaults to `()`.
        steps_per_epoch: Limit of training steps per epoch. Defaults to a
            full pass over the training split.
        patience: Epochs without improvement before early stopping.
            Defaults to the record's setting, else 10.
        data_dir: tensorflow-datasets data directory, for non-embedded data.
        download: Let tensorflow-datasets download. Defaults to `False`.
        strategy: `tf.distribute` strategy name (`training.distributed.
            STRATEGIES`). Defaults to `None`, training with `fit`.
        precision: `float32`, `mixed_float16` or `mixed_bfloat16`.
            Defaults to `None`, float32 with `fit`.

    Returns:
        A `TrainResult`.
    """
    if strategy is not None or precision is not None:
        # `fit` fails under MultiWorkerMirroredStrategy; use a custom loop.
        arguments = dict(locals())
        from training import distributed

        return distributed.train(**arguments)
    from zoo import datasets
    from zoo.registry import get_spec
    from training import callbacks as shared_callbacks
    from training.recipes import resolve_recipe

    spec = get_spec(name)
    hyperparameters = spec.hyperparameters(overrides)
    settings = _settings(spec, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, seed=seed,
                         steps_per_epoch=steps_per_epoch, patience=patience)
    bundle = datasets.load(dataset or spec.dataset, data_dir=data_dir,
                           download=download)
    set_seed(settings["seed"])

    if weights is None:
        model = spec.build(**hyperparameters)
    else:
        from zoo import hub

        model = hub.load_pretrained(name, weights, compile=False,
                                    **(overrides or {}))
    recipe = resolve_recipe(spec, settings)
    check_input_shape(spec, recipe.input_model(model), bundle)
    check_classes(spec, recipe.serving_model(model), bundle)
    recipe.compile(model)

    if augment is not None and isinstance(augment, str):
        from training import augment as augment_module

        augment = augment_module.build_pipeline(augment, seed=settings["seed"])
    train_data, validation_data, test_data = recipe.datasets(bundle, augment)

    config = {
        "model": name,
        "dataset": bundle.name,
        "hyperparameters": hyperparameters,
        "settings": settings,
        "weights": weights,
        "augment": getattr(augment, "spec", None),
        "command": " ".join(sys.argv),
    }
    # A rerun of the same command resumes its unfinished run folder.
    run_dir = run_dir or shared_callbacks.find_unfinished_run(
        runs_root, name, config) or new_run_dir(name, runs_root)
    os.makedirs(run_dir, exist_ok=True)
    shared_callbacks.claim_run_dir(run_dir)
    recipe.run_dir = run_dir
    write_json(os.path.join(run_dir, "config.json"), config)
    all_callbacks = shared_callbacks.default_callbacks(
        run_dir, monitor=recipe.monitor, mode=recipe.monitor_mode,
        patience=settings["patience"], epochs=settings["epochs"],
        learning_rate=settings["learning_rate"],
        schedule=settings.get("lr_schedule", "constant"),
        warmup_epochs=settings.get("warmup_epochs", 0),
    ) + list(callbacks)

    started = time.perf_counter()
    history = recipe.fit(model, train_data, validation_data, all_callbacks)
    seconds = time.perf_counter() - started
    metrics = recipe.evaluate(model, test_data, bundle)
    # A resumed run counts its seconds from the resume.
    metrics["train_seconds"] = seconds
    metrics["epochs_run"] = len(next(iter(history.history.values()), []))
    metrics["resumed_from_epoch"] = next(
        (c.restored_epoch for c in all_callbacks
         if isinstance(c, shared_callbacks.ResumableBackup)), 0)
    write_json(os.path.join(run_dir, "metrics.json"), metrics)
    shared_callbacks.release_run_dir(run_dir)
    logger.info("Run %s finished: %s", run_dir, metrics)
    return TrainResult(
        model=model, spec=spec, run_dir=run_dir, metrics=metrics,
        history=dict(history.history), settings=settings,
        hyperparameters=hyperparameters, bundle=bundle, recipe=recipe,
    )
