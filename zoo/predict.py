"""Run TF Serving style requests against a SavedModel, in process.

Requests use TF Serving's REST predict body: the row format
`{"instances": [...]}` or the columnar format `{"inputs": ...}`, and the
response is `{"predictions": [...]}` or `{"outputs": ...}` as TF Serving
returns them. A `.npy` array is taken as the value of the only input.
"""

import json
import logging
import os

import numpy as np

logger = logging.getLogger(__name__)


class RequestError(ValueError):
    """A request that does not fit the model's serving signature."""


def load_signature(saved_model_dir, signature_name="serving_default"):
    """Load a SavedModel and return `(signature_function, input_specs)`."""
    import tensorflow as tf

    from zoo.export import resolve_version_dir

    path = resolve_version_dir(saved_model_dir)
    loaded = tf.saved_model.load(path)
    if signature_name not in loaded.signatures:
        raise RequestError(
            f"Signature {signature_name!r} not found in {path!r}. Available "
            f"signatures: {', '.join(sorted(loaded.signatures))}."
        )
    function = loaded.signatures[signature_name]
    _, input_specs = function.structured_input_signature
    # Keep the loaded object alive with the function it owns.
    function._zoo_owner = loaded
    return function, dict(input_specs)


def read_request(path):
    """Read a request file: a JSON REST body or a `.npy` array."""
    if not os.path.isfile(path):
        raise RequestError(
            f"Request file not found: {path!r}. Pass a JSON file with "
            '{"instances": [...]} or a .npy array.'
        )
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    with open(path) as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as error:
            raise RequestError(
                f"Request file {path!r} is not valid JSON ({error}). Write a "
                'TF Serving body such as {"instances": [[...], ...]}.'
            ) from error


def _to_array(name, value, spec):
    dtype = spec.dtype.as_numpy_dtype
    try:
        array = np.asarray(value)
    except ValueError as error:
        raise RequestError(
            f"Input {name!r} is a ragged list and cannot form a tensor: "
            f"{error}. Every instance must have shape "
            f"{tuple(spec.shape[1:])}."
        ) from error
    if array.dtype == object or array.dtype.kind in "US":
        raise RequestError(
            f"Input {name!r} must be numeric ({spec.dtype.name}), but the "
            f"request contains values of type {array.dtype}. Send numbers."
        )
    if array.dtype.kind == "f" and np.dtype(dtype).kind in "iu":
        raise RequestError(
            f"Input {name!r} expects integers ({spec.dtype.name}) but the "
            f"request contains floats. Send integer values."
        )
    expected = tuple(spec.shape)
    if array.ndim != len(expected) or any(
        want is not None and want != got
        for want, got in zip(expected, array.shape)
    ):
        readable = tuple("batch" if d is None else d for d in expected)
        raise RequestError(
            f"Input {name!r} has shape {array.shape}, but the model expects "
            f"{readable} (one instance is {expected[1:]}). Reshape the "
            "request to match."
        )
    return array.astype(dtype)


def parse_request(body, input_specs):
    """Turn a request body into `{input_name: np.ndarray}`.

    Raises:
        RequestError: the body's format, names, shapes or dtypes do not fit
            `input_specs`; the message names the value and the fix.
    """
    names = list(input_specs)
    if isinstance(body, np.ndarray):
        if len(names) != 1:
            raise RequestError(
                f"A .npy request fills one input, but the model has "
                f"{len(names)}: {names}. Send a JSON body instead."
            )
        return {names[0]: _to_array(names[0], body, input_specs[names[0]])}
    if not isinstance(body, dict) or (
        ("instances" in body) == ("inputs" in body)
    ):
        received = sorted(body) if isinstance(body, dict) else \
            type(body).__name__
        raise RequestError(
            'The request must be a JSON object with exactly one of '
            '"instances" (row format) or "inputs" (columnar format). '
            f"Received keys: {received}."
        )
    if "inputs" in body:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            columns = {names[0]: columns} if len(names) == 1 else None
        if columns is None or set(columns) != set(names):
            raise RequestError(
                f'"inputs" must name every model input: {names}. Received: '
                f"{sorted(columns) if columns else body['inputs']!r:.80}"
            )
        return {n: _to_array(n, columns[n], input_specs[n]) for n in names}

    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise RequestError(
            '"instances" must be a non-empty list, one entry per example.'
        )
    if all(isinstance(item, dict) for item in instances):
        missing = [n for n in names if any(n not in i for i in instances)]
        extra = sorted({k for i in instances for k in i} - set(names))
        if missing or extra:
            raise RequestError(
                f"Instances must have exactly the keys {names}. Missing: "
                f"{missing}; unknown: {extra}."
            )
        return {
            n: _to_array(n, [i[n] for i in instances], input_specs[n])
            for n in names
        }
    if len(names) != 1:
        raise RequestError(
            f"The model has {len(names)} inputs {names}, so each instance "
            "must be an object keyed by input name."
        )
    return {names[0]: _to_array(names[0], instances, input_specs[names[0]])}


def predict(saved_model_dir, body, signature_name="serving_default"):
    """Run a request body against a SavedModel and return the response.

    Returns:
        `{"predictions": [...]}` for a row-format request (one entry per
        instance: a list, or a dict when the model has several outputs), or
        `{"outputs": ...}` for a columnar request, as TF Serving does.
    """
    function, input_specs = load_signature(saved_model_dir, signature_name)
    arrays = parse_request(body, input_specs)
    outputs = {k: v.numpy() for k, v in function(**arrays).items()}
    columnar = isinstance(body, dict) and "inputs" in body
    if columnar:
        if len(outputs) == 1:
            return {"outputs": next(iter(outputs.values())).tolist()}
        return {"outputs": {k: v.tolist() for k, v in outputs.items()}}
    if len(outputs) == 1:
        return {"predictions": next(iter(outputs.values())).tolist()}
    count = len(next(iter(outputs.values())))
    return {"predictions": [
        {k: v[i].tolist() for k, v in outputs.items()} for i in range(count)
    ]}
