"""Loading pretrained models and measuring them on their split."""

import logging
import warnings

from zoo.hub._download import fetch_file
from zoo.hub._index import HubError
from zoo.hub._index import get_entry

logger = logging.getLogger(__name__)


def _weight_shapes(model):
    return [tuple(weight.shape) for weight in model.weights]


def _load_keras_file(path, label, compile):
    import keras

    import zoo.layers  # noqa: F401  (registers the zoo's custom layers)

    try:
        with warnings.catch_warnings():
            # Published files carry compile settings but no optimizer
            # state, which Keras reports as skipped optimizer variables.
            warnings.filterwarnings(
                "ignore", message="Skipping variable loading for optimizer")
            return keras.saving.load_model(path, compile=compile,
                                           safe_mode=True)
    except ValueError as error:
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise HubError(
                f"Artifact {label} was rejected by Keras safe mode because "
                f"it contains code (such as a Lambda layer): {error}"
            ) from error
        raise


def load_pretrained(name, tag, hub=None, compile=True, **overrides):
    """Load registered model `name` with pretrained weights `tag`.

    The `.keras` file is fetched and verified, loaded with Keras' safe
    mode, and checked against the model the registry builds from the
    entry's hyperparameters. Overrides that keep every weight shape return
    the model with all pretrained weights. Overrides that change some
    shapes, such as `num_classes`, keep the matching weights and initialize
    the others (each is logged), so the model can be fine-tuned.

    Args:
        name: Registered model name.
        tag: Weights tag, such as `"digits"`.
        hub: Hub location or `Hub`. Defaults to `ZOO_HUB`, else the
            repository's hub.
        compile: Return the model compiled (as the artifact was, or by the
            model's training recipe when overrides change it). Defaults to
            `True`.
        **overrides: Hyperparameters replacing those of the entry.

    Returns:
        A `keras.Model`.

    Raises:
        HubError: the entry is missing, a file failed its check, the file
            contains code, or it does not match the registry's builder.

    Example:

    ```python
    model = load_pretrained("cnn", "digits", num_classes=3)
    ```
    """
    from zoo.registry import get_spec

    spec = get_spec(name)
    hub, entry = get_entry(name, tag, hub)
    label = f"{name}:{tag} from hub {hub.location}"
    recorded = spec.hyperparameters(entry.get("hyperparameters", {}))
    hyperparameters = spec.hyperparameters({**recorded, **overrides})
    path = fetch_file(hub, entry["files"]["keras"], f"{name}:{tag} keras")
    # Loaded before the registry model is built, so a seed set by the
    # caller reaches the loaded layers as it does in `publish`.
    loaded = _load_keras_file(path, label, compile)
    built = spec.build(**hyperparameters)

    if len(loaded.weights) != len(built.weights):
        raise HubError(
            f"Artifact {label} has {len(loaded.weights)} weights but the "
            f"registry builds '{name}' with {len(built.weights)} from "
            f"{hyperparameters}. Overrides may change head sizes, not the "
            "depth; otherwise republish the weights for the current builder."
        )
    same_shapes = _weight_shapes(loaded) == _weight_shapes(built)
    if hyperparameters == recorded:
        if not same_shapes:
            raise HubError(
                f"Artifact {label} does not match the model the registry "
                f"builds from its recorded hyperparameters. Republish it "
                f"with `zoo hub rebuild --only {name}:{tag}`."
            )
        return loaded

    skipped = []
    for target, source in zip(built.weights, loaded.weights):
        if tuple(target.shape) == tuple(source.shape):
            target.assign(source)
        else:
            skipped.append(target.path)
    if skipped:
        logger.info("Initialized %d weights whose shape differs from %s:%s: "
                    "%s", len(skipped), name, tag, ", ".join(skipped))
    if compile:
        _recipe(spec, entry).compile(built)
    return built


def _recipe(spec, entry):
    from training.recipes import resolve_recipe
    from training.trainer import DEFAULT_SETTINGS

    return resolve_recipe(spec, {**DEFAULT_SETTINGS,
                                 **entry.get("settings", {})})


def measure(model, spec, dataset, settings=None):
    """Measure the test metrics of `model` on `dataset`'s recorded split.

    The model is compiled by its training recipe and evaluated on the test
    split made with the default split seed, as `zoo train` does.

    Note: this seeds Python, NumPy and Keras' global random generators
    with 0 (`keras.utils.set_random_seed`), so metrics that sample, such
    as an RBM's contrastive divergence loss, repeat from call to call.

    Args:
        model: The Keras model.
        spec: Its `ModelSpec`.
        dataset: Data set name.
        settings: Training settings of the run. Defaults to the trainer's.

    Returns:
        A dict of metric name to float.
    """
    import keras

    from zoo import datasets

    keras.utils.set_random_seed(0)
    recipe = _recipe(spec, {"settings": settings or {}})
    recipe.compile(model)
    bundle = datasets.load(dataset)
    _, _, test = recipe.datasets(bundle)
    return {key: float(value)
            for key, value in recipe.evaluate(model, test, bundle).items()}


def measure_entry(name, tag, hub=None):
    """Load `name:tag` from `hub` and measure it on its recorded split.

    Returns:
        `(recorded_metrics, measured_metrics)`.
    """
    from zoo.registry import get_spec

    hub, entry = get_entry(name, tag, hub)
    if entry.get("split_seed", 0) != 0 or entry.get("split") != "test":
        raise HubError(
            f"{name}:{tag} records split {entry.get('split')!r} with seed "
            f"{entry.get('split_seed')!r}; only the test split of seed 0, "
            "which `zoo train` uses, can be measured."
        )
    import keras

    # Seeded before loading because sampling layers draw their seeds when
    # they are created; `publish` does the same.
    keras.utils.set_random_seed(0)
    model = load_pretrained(name, tag, hub=hub, compile=False)
    measured = measure(model, get_spec(name), entry["dataset"],
                       entry.get("settings"))
    return dict(entry["metrics"]), measured
