"""Model registry: one `ModelSpec` record per public model name.

The registry is pure Python. Importing it, or listing models, never imports
TensorFlow; builders import Keras inside their own bodies.
"""

import dataclasses
import difflib
import fnmatch
import json
import logging
import re
import warnings
from typing import Any, Callable, Mapping

logger = logging.getLogger(__name__)

TASKS = (
    "classification",
    "image-classification",
    "image-generation",
    "regression",
    "time-series-forecasting",
    "sequence-classification",
    "set-classification",
    "set-regression",
    "associative-memory",
    "representation-learning",
    "clustering",
)

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_\-]*$")


class UnknownModelError(KeyError):
    """Raised when a name matches no registered model."""

    def __str__(self):
        # KeyError quotes its argument; a plain message reads better.
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class TensorRecord:
    """A named serving tensor: shape with `None` for the batch, and dtype."""

    shape: tuple
    dtype: str = "float32"

    def to_dict(self):
        return {"shape": list(self.shape), "dtype": self.dtype}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Record of one registered model: builder, task, data and serving.

    Attributes:
        name: Public name, lowercase words joined by `-` or `_`.
        family: Family module name, for example `"cnn"`.
        task: One of `TASKS`.
        description: One line for listings.
        builder: Callable returning an uncompiled `keras.Model`; it receives
            the hyperparameters as keyword arguments.
        defaults: Default hyperparameters passed to the builder.
        inputs: Serving inputs, name to `TensorRecord`, in call order.
        outputs: Serving outputs, name to `TensorRecord`.
        dataset: Default data set name for `zoo train`.
        references: Papers, each `"Authors (year). Title. URL"`.
        pretrained: Weight tags published for this model.
        training: Default training settings (`epochs`, `batch_size`,
            `learning_rate`, ...), overridable from the command line.
        smoke: Hyperparameter overrides that make a tiny model for tests.
        recipe: Optional `"module:attribute"` path of a training recipe
            class; `None` uses the task's default recipe.
    """

    name: str
    family: str
    task: str
    description: str
    builder: Callable[..., Any]
    defaults: Mapping[str, Any]
    inputs: Mapping[str, TensorRecord]
    outputs: Mapping[str, TensorRecord]
    dataset: str
    references: tuple = ()
    pretrained: tuple = ()
    training: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    smoke: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    recipe: str | None = None

    def hyperparameters(self, overrides=None):
        """Return the defaults updated by `overrides`; unknown keys raise."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"Unknown hyperparameter(s) for model '{self.name}': "
                f"{', '.join(unknown)}. Valid names: "
                f"{', '.join(sorted(self.defaults))}. "
                f"Run `zoo info {self.name}` to see them with their defaults."
            )
        for key, value in overrides.items():
            _check_type(self.name, key, value, self.defaults[key])
        return {**self.defaults, **overrides}

    def build(self, **overrides):
        """Build the Keras model with the defaults updated by `overrides`."""
        hyperparameters = self.hyperparameters(overrides)
        try:
            return self.builder(**hyperparameters)
        except TypeError as error:
            raise ValueError(
                f"Building model '{self.name}' failed with hyperparameters "
                f"{overrides}: {error}. Check the values against the "
                f"defaults shown by `zoo info {self.name}`."
            ) from error

    def to_dict(self):
        """Return a JSON-ready summary (the builder as its dotted path)."""
        return {
            "name": self.name,
            "family": self.family,
            "task": self.task,
            "description": self.description,
            "builder": f"{self.builder.__module__}.{self.builder.__qualname__}",
            "defaults": _jsonable(dict(self.defaults)),
            "inputs": {k: v.to_dict() for k, v in self.inputs.items()},
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
            "dataset": self.dataset,
            "references": list(self.references),
            "pretrained": list(self.pretrained),
            "training": _jsonable(dict(self.training)),
        }


def _type_name(value):
    if isinstance(value, bool):
        return "a boolean (true or false)"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def _check_type(model, key, value, default):
    """Raise `ValueError` when `value` is not of the kind of `default`."""
    if default is None or value is None:
        return
    if isinstance(default, bool):
        fits = isinstance(value, bool)
    elif isinstance(default, int):
        fits = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        fits = isinstance(value, (int, float)) and not isinstance(value,
                                                                  bool)
    elif isinstance(default, (list, tuple)):
        fits = isinstance(value, (list, tuple))
    elif isinstance(default, str):
        fits = isinstance(value, str)
    else:
        fits = True
    if not fits:
        example = json.dumps(default if not isinstance(default, tuple)
                             else list(default))
        raise ValueError(
            f"Hyperparameter '{key}' of model '{model}' must be "
            f"{_type_name(default)}, like its default {example}. Received: "
            f"{value!r}. On the command line: --set {key}={example}"
        )


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


_REGISTRY: dict[str, ModelSpec] = {}


def _tensor_records(argument, records):
    if not isinstance(records, Mapping) or not records:
        raise ValueError(
            f"`{argument}` must be a non-empty mapping of tensor name to "
            f"(shape, dtype). Received: {records!r}"
        )
    result = {}
    for key, record in records.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(
                f"Serving tensor names in `{argument}` must be identifiers, "
                f"as TF Serving request keys are. Received: {key!r}"
            )
        if isinstance(record, TensorRecord):
            result[key] = record
            continue
        if isinstance(record, tuple) and len(record) == 2 and isinstance(
            record[1], str
        ):
            shape, dtype = record
        else:
            shape, dtype = record, "float32"
        shape = tuple(shape)
        if not shape or shape[0] is not None:
            raise ValueError(
                f"Serving tensor '{key}' in `{argument}` must have a dynamic "
                f"batch dimension (shape starting with None). "
                f"Received: {shape!r}"
            )
        result[key] = TensorRecord(shape=shape, dtype=dtype)
    return result


def validate_spec(spec):
    """Raise `ValueError` naming the first invalid field of `spec`."""
    if not isinstance(spec.name, str) or not _NAME_PATTERN.match(spec.name):
        raise ValueError(
            "`name` must be lowercase letters, digits, `-` or `_`, starting "
            f"with a letter. Received: name={spec.name!r}"
        )
    if spec.task not in TASKS:
        raise ValueError(
            f"`task` must be one of {', '.join(TASKS)}. "
            f"Received: task={spec.task!r}"
        )
    if not callable(spec.builder):
        raise ValueError(
            f"`builder` must be callable. Received: builder={spec.builder!r}"
        )
    if not spec.description or "\n" in spec.description:
        raise ValueError(
            "`description` must be one non-empty line. "
            f"Received: description={spec.description!r}"
        )
    if not isinstance(spec.dataset, str) or not spec.dataset:
        raise ValueError(
            f"`dataset` must be a data set name. Received: {spec.dataset!r}"
        )
    unknown = sorted(set(spec.smoke) - set(spec.defaults))
    if unknown:
        raise ValueError(
            f"`smoke` overrides name unknown hyperparameters {unknown} of "
            f"model '{spec.name}'. Valid names: {sorted(spec.defaults)}"
        )


def register_model(
    name=None,
    *,
    family,
    task,
    inputs,
    outputs,
    dataset,
    description=None,
    defaults=None,
    references=(),
    pretrained=(),
    training=None,
    smoke=None,
    recipe=None,
):
    """Register a model builder under a public name.

    Use it as a decorator on a function that returns a `keras.Model`:

    ```python
    @zoo.register_model(
        "tiny-mlp",
        family="dense",
        task="image-classification",
        inputs={"features": ((None, 64), "float32")},
        outputs={"probabilities": ((None, 10), "float32")},
        dataset="digits-flat",
        defaults={"units": 32},
    )
    def tiny_mlp(units):
        ...
    ```

    Args:
        name: Public name. Defaults to the function name with `_` as `-`.
        family: Family the model belongs to.
        task: One of `zoo.registry.TASKS`.
        inputs: Serving inputs, name to `(shape, dtype)` or shape.
        outputs: Serving outputs, name to `(shape, dtype)` or shape.
        dataset: Default data set for training.
        description: One line. Defaults to the builder docstring's first line.
        defaults: Default hyperparameters. Defaults to `{}`.
        references: Papers describing the model. Defaults to `()`.
        pretrained: Published weight tags. Defaults to `()`.
        training: Default training settings. Defaults to `{}`.
        smoke: Hyperparameter overrides for a tiny test model.
        recipe: `"module:Class"` path of a custom training recipe.

    Returns:
        The decorator, which returns the builder unchanged.

    Registering a name twice replaces the earlier record with a warning.
    """

    def decorator(builder):
        public_name = name or builder.__name__.replace("_", "-")
        summary = description
        if summary is None:
            doc = (builder.__doc__ or "").strip()
            summary = doc.splitlines()[0].strip() if doc else ""
        spec = ModelSpec(
            name=public_name,
            family=family,
            task=task,
            description=summary,
            builder=builder,
            defaults=dict(defaults or {}),
            inputs=_tensor_records("inputs", inputs),
            outputs=_tensor_records("outputs", outputs),
            dataset=dataset,
            references=tuple(references),
            pretrained=tuple(pretrained),
            training=dict(training or {}),
            smoke=dict(smoke or {}),
            recipe=recipe,
        )
        add_spec(spec)
        return builder

    return decorator


def add_spec(spec):
    """Validate `spec` and add it, warning when it replaces a record."""
    validate_spec(spec)
    if spec.name in _REGISTRY:
        warnings.warn(
            f"Model '{spec.name}' is already registered; the new record "
            "replaces it. Pick another name to keep both.",
            stacklevel=3,
        )
    _REGISTRY[spec.name] = spec


def unregister_model(name):
    """Remove a registered model; raises `UnknownModelError` if missing."""
    get_spec(name)
    del _REGISTRY[name]


def _ensure_builtin_models():
    # Importing the family modules registers them; they import no Keras.
    import zoo.models  # noqa: F401


def get_spec(name):
    """Return the `ModelSpec` registered as `name`.

    Raises:
        UnknownModelError: no such model; the message lists close names.
    """
    _ensure_builtin_models()
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3,
                                      cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"Unknown model name: {name!r}.{hint} "
        "Run `zoo list` (or `zoo.list_models()`) to see every registered "
        "model."
    )


def list_models(pattern=None, task=None, family=None, dataset=None,
                pretrained=None):
    """Return the sorted names of registered models matching the filters.

    Args:
        pattern: Glob pattern on the name, such as `"cnn*"`. Defaults to all.
        task: Keep only models of this task. Defaults to any.
        family: Keep only models of this family. Defaults to any.
        dataset: Keep only models whose default data set is this.
        pretrained: `True` keeps models with published weights, a string
            keeps models with that weight tag. Defaults to no filter.
    """
    _ensure_builtin_models()
    if task is not None and task not in TASKS:
        raise ValueError(
            f"Unknown task {task!r}. Valid tasks: {', '.join(TASKS)}"
        )
    names = []
    for name, spec in sorted(_REGISTRY.items()):
        if pattern and not fnmatch.fnmatchcase(name, pattern):
            continue
        if task and spec.task != task:
            continue
        if family and spec.family != family:
            continue
        if dataset and spec.dataset != dataset:
            continue
        if pretrained is True and not spec.pretrained:
            continue
        if isinstance(pretrained, str) and pretrained not in spec.pretrained:
            continue
        names.append(name)
    return names


def model_info(name):
    """Return the record of model `name` as a JSON-ready dict."""
    return get_spec(name).to_dict()


def get_model(name, weights=None, hub=None, **overrides):
    """Build registered model `name`, optionally with pretrained weights.

    Args:
        name: Registered model name.
        weights: Pretrained weight tag, such as `"digits"`. Defaults to
            `None` (randomly initialized).
        hub: Hub location for `weights`. Defaults to `ZOO_HUB`, else the
            project's own hub.
        **overrides: Hyperparameters replacing the defaults.

    Returns:
        An uncompiled `keras.Model`, or a compiled one loaded from the hub.
    """
    spec = get_spec(name)
    if weights is None:
        return spec.build(**overrides)
    from zoo import hub as hub_module

    return hub_module.load_pretrained(name, weights, hub=hub, **overrides)
