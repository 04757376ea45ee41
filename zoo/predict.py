"""Run TF Serving style requests against a SavedModel, in process.

Requests use TF Serving's REST bodies:

- predict, row format `{"instances": [...]}` or columnar format
  `{"inputs": ...}`, which return `{"predictions": [...]}` or
  `{"outputs": ...}`;
- classify, `{"examples": [{feature: value, ...}, ...]}` for a signature
  that parses serialized `tf.Example`s, which returns
  `{"results": [[[class, score], ...], ...]}`.

A body may name its signature with `"signature_name"`. String inputs take
`{"b64": "..."}` for binary data such as PNG bytes. A `.npy` array is taken
as the value of the only input.
"""

import base64
import json
import logging
import os

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"


class RequestError(ValueError):
    """A request that does not fit the model's serving signature."""


def load_signature(saved_model_dir, signature_name=DEFAULT_SIGNATURE):
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
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, EOFError, OSError) as error:
            raise RequestError(
                f"Request file {path!r} is not a valid .npy array "
                f"({str(error).rstrip('.')}). Write it with numpy.save, or "
                "send a JSON body in a .json file."
            ) from error
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except UnicodeDecodeError as error:
        raise RequestError(
            f"Request file {path!r} is not UTF-8 text ({error.reason} at "
            f"byte {error.start}). JSON bodies must be UTF-8."
        ) from error
    except json.JSONDecodeError as error:
        raise RequestError(
            f"Request file {path!r} is not valid JSON ({error}). Write a "
            'TF Serving body such as {"instances": [[...], ...]}.'
        ) from error
    except RecursionError as error:
        raise RequestError(
            f"Request file {path!r} nests JSON too deeply to parse. Send "
            "arrays of the model's input rank."
        ) from error


def _decode_strings(name, value):
    """Turn JSON strings and `{"b64": ...}` objects into bytes."""
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise RequestError(
                f"Input {name!r}: binary values must be {{\"b64\": "
                f"\"<base64 text>\"}}. Received keys: {sorted(value)}."
            )
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError as error:
            raise RequestError(
                f"Input {name!r}: invalid base64 in a \"b64\" value "
                f"({error})."
            ) from error
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, list):
        return [_decode_strings(name, item) for item in value]
    raise RequestError(
        f"Input {name!r} expects strings or {{\"b64\": ...}} values. "
        f"Received: {value!r:.60}"
    )


def _to_array(name, value, spec):
    dtype = spec.dtype.as_numpy_dtype
    expected = tuple(spec.shape)
    if spec.dtype.name == "string":
        array = np.asarray(_decode_strings(name, value), dtype=object)
    else:
        try:
            array = np.asarray(value)
        except ValueError as error:
            raise RequestError(
                f"Input {name!r} is a ragged list and cannot form a tensor "
                f"({str(error).rstrip('.')}). Every instance must have "
                f"shape {expected[1:]}."
            ) from error
        if array.dtype == object or array.dtype.kind in "USbcV":
            raise RequestError(
                f"Input {name!r} must be numeric ({spec.dtype.name}), but "
                f"the request contains values of type {array.dtype}. Send "
                "real numbers."
            )
        if array.dtype.kind == "f" and np.dtype(dtype).kind in "iu":
            raise RequestError(
                f"Input {name!r} expects integers ({spec.dtype.name}) but "
                "the request contains floats. Send integer values."
            )
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
    if array.shape and array.shape[0] == 0:
        raise RequestError(
            f"Input {name!r} contains no instances. Send at least one."
        )
    if spec.dtype.name == "string":
        return array
    with np.errstate(over="ignore", invalid="ignore"):
        converted = array.astype(dtype)
    if converted.dtype.kind == "f" and np.isfinite(array).all() and \
            not np.isfinite(converted).all():
        raise RequestError(
            f"Input {name!r} has values too large for {spec.dtype.name} "
            f"(largest magnitude {np.abs(array).max():.3g}). Scale the "
            "inputs as the model was trained."
        )
    return converted


def parse_request(body, input_specs):
    """Turn a predict body into `{input_name: np.ndarray}`.

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
            received = sorted(columns) if columns else body["inputs"]
            raise RequestError(
                f'"inputs" must name every model input: {names}. Received: '
                f"{received!r:.80}"
            )
        return {n: _to_array(n, columns[n], input_specs[n]) for n in names}

    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise RequestError(
            '"instances" must be a non-empty list, one entry per example.'
        )
    named = all(isinstance(item, dict) and set(item) != {"b64"}
                for item in instances)
    if named:
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


def _feature(name, value):
    import tensorflow as tf

    values = value if isinstance(value, list) else [value]
    flat = np.asarray(values, dtype=object).reshape(-1).tolist()
    if flat and all(isinstance(v, bool) for v in flat):
        raise RequestError(
            f"Feature {name!r}: booleans have no tf.Example type. Send "
            "0 and 1."
        )
    if all(isinstance(v, int) for v in flat):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=flat))
    if all(isinstance(v, (int, float)) for v in flat):
        return tf.train.Feature(float_list=tf.train.FloatList(value=flat))
    return tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[_decode_strings(name, v) for v in flat]))


def serialize_examples(body):
    """Return the `tf.Example`s of a classify body, serialized.

    Each example is an object of feature name to a number, a string, a
    `{"b64": ...}` value or a (nested) list of them. Features of the
    body's optional `"context"` object are added to every example.
    """
    import tensorflow as tf

    examples = body.get("examples")
    context = body.get("context", {})
    if not isinstance(examples, list) or not examples or not all(
            isinstance(e, dict) for e in examples):
        raise RequestError(
            '"examples" must be a non-empty list of objects, feature name '
            'to value, such as {"examples": [{"images": [0.0, 0.5, ...]}]}.'
        )
    if not isinstance(context, dict):
        raise RequestError('"context" must be an object of features.')
    serialized = []
    for example in examples:
        features = {k: _feature(k, v) for k, v in {**context,
                                                   **example}.items()}
        serialized.append(tf.train.Example(features=tf.train.Features(
            feature=features)).SerializeToString())
    return serialized


def _classify(function, input_specs, body):
    string_inputs = [n for n, s in input_specs.items()
                     if s.dtype.name == "string"]
    if len(input_specs) != 1 or not string_inputs:
        raise RequestError(
            '"examples" requests need a signature that takes serialized '
            f"tf.Example strings, such as 'classify'. This one takes "
            f"{ {n: s.dtype.name for n, s in input_specs.items()} }."
        )
    import tensorflow as tf

    serialized = tf.constant(serialize_examples(body))
    try:
        outputs = function(**{string_inputs[0]: serialized})
    except tf.errors.InvalidArgumentError as error:
        raise RequestError(
            "The examples do not parse as this signature expects: "
            f"{error.message.splitlines()[0]}"
        ) from error
    if "scores" not in outputs:
        raise RequestError(
            "The signature has no 'scores' output, so it is not a classify "
            "signature. Send a predict body instead."
        )
    scores = outputs["scores"].numpy()
    classes = outputs["classes"].numpy() if "classes" in outputs else \
        np.tile(np.arange(scores.shape[-1]).astype(str),
                (len(scores), 1))
    results = []
    for row_classes, row_scores in zip(classes, scores):
        results.append([
            [c.decode() if isinstance(c, bytes) else str(c), float(s)]
            for c, s in zip(row_classes, row_scores)
        ])
    return {"results": results}


def _signature_name(body, signature_name):
    named = body.get("signature_name") if isinstance(body, dict) else None
    if named is not None and not isinstance(named, str):
        raise RequestError(
            f'"signature_name" must be a string. Received: {named!r}'
        )
    if named and signature_name and named != signature_name:
        raise RequestError(
            f'The body names signature {named!r} but --signature is '
            f"{signature_name!r}. Drop one of them."
        )
    return named or signature_name or DEFAULT_SIGNATURE


def predict(saved_model_dir, body, signature_name=None):
    """Run a request body against a SavedModel and return the response.

    Args:
        saved_model_dir: Version folder or TF Serving base path.
        body: Parsed JSON body, or a NumPy array for the only input.
        signature_name: Signature to run. Defaults to the body's
            `"signature_name"`, else `serving_default`.

    Returns:
        `{"predictions": [...]}` for a row-format request (one entry per
        instance: a list, or a dict when the model has several outputs),
        `{"outputs": ...}` for a columnar request, or `{"results": ...}`
        for a classify request, as TF Serving's REST API returns them.
    """
    signature = _signature_name(body, signature_name)
    function, input_specs = load_signature(saved_model_dir, signature)
    if isinstance(body, dict) and "examples" in body:
        return _classify(function, input_specs, body)
    arrays = parse_request(body, input_specs)
    outputs = {k: v.numpy() for k, v in function(**arrays).items()}
    columnar = isinstance(body, dict) and "inputs" in body
    if columnar:
        if len(outputs) == 1:
            return {"outputs": _jsonable(next(iter(outputs.values())))}
        return {"outputs": {k: _jsonable(v) for k, v in outputs.items()}}
    if len(outputs) == 1:
        return {"predictions": _jsonable(next(iter(outputs.values())))}
    count = len(next(iter(outputs.values())))
    return {"predictions": [
        {k: _jsonable(v[i]) for k, v in outputs.items()} for i in range(count)
    ]}


def _jsonable(array):
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind == "S":
        return np.vectorize(
            lambda v: v.decode("utf-8", "replace")
            if isinstance(v, bytes) else v, otypes=[object])(array).tolist()
    return array.tolist()
