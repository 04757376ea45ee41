"""Checks that an export runs in TF Serving, on GPUs and TPUs as it is.

Each check reads only the registry record, the training recipe and the
exported files, so every registered family is checked without code of
its own:

- op audit: every op the signatures reach is a standard TensorFlow op with
  a CPU kernel; no Python callbacks (`tf.py_function`,
  `tf.numpy_function`), no GPU-only cuDNN ops, no custom ops.
- signature: `serving_default` as `saved_model_cli show` reports it has
  the registry's input and output names, dtypes and shapes, with a dynamic
  batch dimension.
- fresh-process parity: a new Python process loads the export as TF
  Serving does (a TF1 session, feeds and fetches by the signature's tensor
  names) and reproduces the Keras model's outputs within 1e-5 on real
  inputs, for every signature.
- warm-up: every record of `assets.extra/tf_serving_warmup_requests`
  parses as a `PredictionLog` and runs in that session.
- XLA: `serving_default` compiles with `jit_compile=True` and gives the
  same outputs, the closest check of TPU readiness a CPU can run.
- mixed precision: the model rebuilt under `mixed_bfloat16` (or the model
  itself, when it was trained under a mixed policy) exports a float32
  signature with finite outputs.
- TFLite: the TFLite converter, with built-in ops only, converts
  `serving_default` and the TFLite interpreter reproduces the outputs.

`build_matrix` runs them for every registered model and `render_matrix`
writes the table of `docs/export-matrix.md`.
"""

import base64
import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import warnings

import numpy as np

logger = logging.getLogger(__name__)

PASS = "pass"
FAIL = "fail"
SKIPPED = "n/a"
# TFLite's built-in ops do not cover the model, which is no export error.
UNSUPPORTED = "unsupported"

OP_AUDIT = "op audit"
SIGNATURE = "signature"
FRESH_PROCESS = "fresh-process parity"
WARMUP = "warm-up"
XLA = "XLA"
MIXED_PRECISION = "mixed precision"
TFLITE = "TFLite"
CHECKS = (OP_AUDIT, SIGNATURE, FRESH_PROCESS, WARMUP, XLA, MIXED_PRECISION,
          TFLITE)

TOLERANCE = 1e-5
# TFLite kernels (XNNPACK) may sum floats in another order than TensorFlow,
# so TFLite gets a looser bound.
TFLITE_TOLERANCE = 1e-4
SAMPLE_COUNT = 8
TFLITE_FILE = "model.tflite"
PYTHON_CALLBACK_OPS = ("PyFunc", "PyFuncStateless", "EagerPyFunc")
FRESH_PROCESS_TIMEOUT = 600


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """Outcome of one named check, with `status` one of `PASS`, `FAIL`,
    `UNSUPPORTED` or `SKIPPED`; only `FAIL` counts as not passed."""

    name: str
    status: str
    detail: str = ""

    @property
    def passed(self):
        return self.status != FAIL


class TFLiteUnsupportedError(ValueError):
    """Raised when the TFLite converter rejects a model's ops."""


class ExportCheckError(ValueError):
    """Raised when an export fails a check; `results` lists every check."""

    def __init__(self, message, results):
        super().__init__(message)
        self.results = results


@dataclasses.dataclass
class ExportUnderTest:
    """An export and what the checks compare it with.

    Attributes:
        spec: The model's `ModelSpec`.
        export_dir: The SavedModel folder.
        serving_model: The Keras model that was exported.
        inputs: Real `serving_default` inputs, name to array.
        model: The whole trained model (for the mixed-precision rebuild).
            Defaults to `serving_model`.
        recipe: The training recipe, whose `serving_model` picks the
            served part of a rebuilt model. Defaults to the whole model.
        hyperparameters: Builder arguments for the rebuild. Defaults to
            the record's defaults.
        tflite: Also convert to TFLite and check it. Defaults to `False`.
    """

    spec: object
    export_dir: str
    serving_model: object
    inputs: dict
    model: object = None
    recipe: object = None
    hyperparameters: dict = None
    tflite: bool = False


# --- expected outputs --------------------------------------------------------

def keras_outputs(model, output_names, inputs):
    """Return the Keras model's outputs on `inputs`, keyed by output name."""
    values = [np.asarray(v) for v in inputs.values()]
    result = model(values if len(values) > 1 else values[0], training=False)
    if not isinstance(result, (list, tuple)):
        result = [result]
    return {name: np.asarray(value, dtype="float32")
            if np.asarray(value).dtype.kind == "f" else np.asarray(value)
            for name, value in zip(output_names, result)}


def signature_cases(item):
    """Return `{signature: (feeds, expected)}` for every known signature.

    `serving_default` is compared with the Keras model on the real inputs.
    `classify` gets those inputs as `tf.Example`s and must return the same
    scores. `serving_png` gets them as PNG bytes and must match the Keras
    model on the same images decoded by `zoo.export.decode_images`.
    """
    from zoo import export

    spec = item.spec
    expected = keras_outputs(item.serving_model, list(spec.outputs),
                             item.inputs)
    cases = {"serving_default": (dict(item.inputs), expected)}
    signatures = _signature_defs(item.export_dir)
    if len(item.inputs) != 1:
        return cases
    (input_name, values), = item.inputs.items()
    output_name = next(iter(spec.outputs))
    if export.CLASSIFY_SIGNATURE in signatures:
        feeds = {export.CLASSIFY_INPUT: export.make_examples(input_name,
                                                             values)}
        cases[export.CLASSIFY_SIGNATURE] = (
            feeds, {"scores": expected[output_name]})
    if export.PNG_SIGNATURE in signatures:
        encoded = export.encode_png(values)
        height, width, channels = (int(d) for d in values.shape[1:])
        decoded = export.decode_images(encoded, height, width,
                                       channels).numpy()
        cases[export.PNG_SIGNATURE] = (
            {export.PNG_INPUT: encoded},
            keras_outputs(item.serving_model, list(spec.outputs),
                          {input_name: decoded}))
    return cases


def _max_difference(actual, expected):
    if actual is None:
        return None
    actual = np.asarray(actual, dtype="float64")
    expected = np.asarray(expected, dtype="float64")
    if actual.shape != expected.shape:
        return None
    if not actual.size:
        return 0.0
    # Relative above magnitude 1, absolute below it.
    scale = np.maximum(1.0, np.abs(expected))
    return float(np.max(np.abs(actual - expected) / scale))


def compare_outputs(check, source, outputs, expected, tolerance):
    """Compare `outputs` of `source` with the Keras model's `expected`.

    Returns:
        A `CheckResult` named `check`: a failure naming the first output
        that is missing, has another shape or differs by more than
        `tolerance`, else a pass stating the max difference.
    """
    worst = 0.0
    for key, want in expected.items():
        difference = _max_difference(outputs.get(key), want)
        if difference is None or difference > tolerance:
            return CheckResult(
                check, FAIL,
                f"output {key!r} of {source} differs from the Keras model "
                f"by {difference} (tolerance {tolerance})")
        worst = max(worst, difference)
    return CheckResult(check, PASS, f"max difference {worst:.1e}")


# --- op audit ----------------------------------------------------------------

def _meta_graph(export_dir):
    from tensorflow.python.tools import saved_model_utils

    return saved_model_utils.get_meta_graph_def(export_dir, "serve")


def _signature_defs(export_dir):
    return dict(_meta_graph(export_dir).signature_def)


def _called_functions(node):
    for attr in node.attr.values():
        if attr.HasField("func"):
            yield attr.func.name
        for function in attr.list.func:
            yield function.name


def ops_by_signature(export_dir):
    """Return `{signature: set of op types}` reachable from each signature.

    The walk starts at the graph nodes of a signature's outputs, follows
    their inputs, and descends into every function a node calls
    (`StatefulPartitionedCall`, `While` bodies, `If` branches, ...).
    """
    meta_graph = _meta_graph(export_dir)
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    library = {f.signature.name: f
               for f in meta_graph.graph_def.library.function}
    result = {}
    for name, signature in meta_graph.signature_def.items():
        ops = set()
        pending = [info.name.split(":")[0].lstrip("^")
                   for info in signature.outputs.values()]
        seen_nodes, seen_functions = set(), set()
        functions = []
        while pending:
            node_name = pending.pop()
            if node_name in seen_nodes or node_name not in nodes:
                continue
            seen_nodes.add(node_name)
            node = nodes[node_name]
            ops.add(node.op)
            functions.extend(_called_functions(node))
            pending.extend(i.split(":")[0].lstrip("^") for i in node.input)
        while functions:
            function_name = functions.pop()
            if function_name in seen_functions:
                continue
            seen_functions.add(function_name)
            if function_name not in library:
                # A call to an op registered as a function name.
                ops.add(function_name)
                continue
            for node in library[function_name].node_def:
                ops.add(node.op)
                functions.extend(_called_functions(node))
        result[name] = ops
    return result


def op_problem(op):
    """Return why `op` cannot run everywhere TF Serving runs, or `None`."""
    from tensorflow.python.framework import kernels, op_def_registry

    if op in PYTHON_CALLBACK_OPS:
        return ("a Python callback (tf.py_function or tf.numpy_function), "
                "which needs the Python interpreter TF Serving lacks")
    if op.startswith("Cudnn"):
        return "a cuDNN-only op, which has no CPU or TPU kernel"
    if op_def_registry.get(op) is None:
        return ("not a standard TensorFlow op (a custom op TF Serving does "
                "not have)")
    devices = {k.device_type for k in
               kernels.get_registered_kernels_for_op(op).kernel}
    if devices and not devices & {"CPU", "DEFAULT"}:
        return (f"an op with kernels only for {', '.join(sorted(devices))},"
                " so it cannot run on CPU")
    return None


def audit_ops(export_dir):
    """Check every op reachable from every signature; see `op_problem`."""
    problems = []
    total = set()
    for signature, ops in sorted(ops_by_signature(export_dir).items()):
        total |= ops
        for op in sorted(ops):
            reason = op_problem(op)
            if reason:
                problems.append(
                    f"op {op} in signature {signature!r} is {reason}")
    if problems:
        return CheckResult(OP_AUDIT, FAIL, "; ".join(problems))
    return CheckResult(OP_AUDIT, PASS, f"{len(total)} op types")


# --- signature against the registry ------------------------------------------

def _dims(tensor_info):
    if tensor_info.tensor_shape.unknown_rank:
        return None
    return tuple(d.size for d in tensor_info.tensor_shape.dim)


def _compare_tensors(kind, found, records, shapes=None):
    from tensorflow.python.framework import dtypes

    problems = []
    if set(found) != set(records):
        problems.append(
            f"{kind} names {sorted(found)} differ from the registry's "
            f"{sorted(records)}")
        return problems
    for key, record in records.items():
        info = found[key]
        dtype = dtypes.as_dtype(info.dtype).name
        if dtype != record.dtype:
            problems.append(f"{kind} {key!r} has dtype {dtype}, the "
                            f"registry says {record.dtype}")
        dims = _dims(info)
        shape = (shapes or {}).get(key, record.shape)
        wanted = tuple(-1 if d is None else d for d in shape)
        if dims is None or len(dims) != len(wanted):
            problems.append(f"{kind} {key!r} has shape {dims}, the "
                            f"registry says {record.shape}")
            continue
        if dims[0] != -1:
            problems.append(f"{kind} {key!r} has a fixed batch dimension "
                            f"{dims[0]}; TF Serving batches need -1")
        for index, (have, want) in enumerate(zip(dims[1:], wanted[1:]), 1):
            if want != -1 and have != want:
                source = "the model" if key in (shapes or {}) \
                    else "the registry"
                problems.append(
                    f"{kind} {key!r} has size {have} in dimension {index}, "
                    f"{source} says {want}")
    return problems


def _model_shapes(model, names, attribute):
    from zoo.export import symbolic_tensors

    tensors = symbolic_tensors(model, attribute)
    if tensors is None or len(tensors) != len(names):
        return {}
    return {name: (None,) + tuple(t.shape[1:])
            for name, t in zip(names, tensors)}


def check_signature(export_dir, spec, model=None):
    """Compare `serving_default` in `saved_model.pb` with the registry.

    The SignatureDef is read with the function `saved_model_cli show`
    uses, so names, dtypes and shapes are those TF Serving reports. Names,
    dtypes, ranks and the dynamic batch come from the registry record.
    Sizes come from the record too, unless `model` is given: a model built
    with other hyperparameters (a smaller latent size, say) has its own
    sizes, and the export must carry those.

    Args:
        export_dir: The SavedModel folder.
        spec: The model's `ModelSpec`.
        model: The exported Keras model. Defaults to `None`.
    """
    signatures = _signature_defs(export_dir)
    if "serving_default" not in signatures:
        return CheckResult(
            SIGNATURE, FAIL,
            "signature 'serving_default' is missing; found "
            f"{sorted(signatures)}")
    signature = signatures["serving_default"]
    input_shapes = output_shapes = None
    if model is not None:
        input_shapes = _model_shapes(model, list(spec.inputs), "inputs")
        output_shapes = _model_shapes(model, list(spec.outputs), "outputs")
    problems = _compare_tensors("input", dict(signature.inputs),
                                spec.inputs, input_shapes)
    problems += _compare_tensors("output", dict(signature.outputs),
                                 spec.outputs, output_shapes)
    if problems:
        return CheckResult(SIGNATURE, FAIL,
                           "signature 'serving_default': "
                           + "; ".join(problems))
    return CheckResult(SIGNATURE, PASS,
                       f"{len(signatures) - 1} signatures, dynamic batch")


# --- fresh process: TF1 session as TF Serving loads it -----------------------

def _encode_feed(value):
    if isinstance(value, list) or (isinstance(value, np.ndarray)
                                   and value.dtype.kind in "OSU"):
        return {"bytes": [base64.b64encode(v).decode("ascii")
                          for v in value]}
    return None


def _decode_feed(entry, arrays, key):
    if isinstance(entry, dict):
        return np.array([base64.b64decode(v) for v in entry["bytes"]],
                        dtype=object)
    return arrays[key]


def fresh_process_checks(items, timeout=FRESH_PROCESS_TIMEOUT):
    """Run the parity and warm-up checks of many exports in one process.

    Args:
        items: `ExportUnderTest`s.
        timeout: Seconds before the process is stopped. Defaults to
            `FRESH_PROCESS_TIMEOUT`.

    Returns:
        A list, per item, of `[parity CheckResult, warm-up CheckResult]`.
    """
    manifest = []
    arrays = {}
    for index, item in enumerate(items):
        signatures = []
        for name, (feeds, expected) in signature_cases(item).items():
            feed_entries = {}
            for key, value in feeds.items():
                encoded = _encode_feed(value)
                array_key = f"{index}/{name}/in/{key}"
                if encoded is None:
                    arrays[array_key] = np.asarray(value)
                feed_entries[key] = encoded or array_key
            expected_keys = {}
            for key, value in expected.items():
                array_key = f"{index}/{name}/out/{key}"
                arrays[array_key] = np.asarray(value)
                expected_keys[key] = array_key
            signatures.append({"name": name, "feeds": feed_entries,
                               "expected": expected_keys})
        manifest.append({"export_dir": os.path.abspath(item.export_dir),
                         "signatures": signatures})
    with tempfile.TemporaryDirectory(prefix="zoo-checks-") as folder:
        manifest_path = os.path.join(folder, "manifest.json")
        with open(manifest_path, "w") as handle:
            json.dump(manifest, handle)
        np.savez(os.path.join(folder, "arrays.npz"), **arrays)
        # NOTE: unless the caller chose devices, the checking process
        # runs on CPU, so it neither competes with this process for GPU
        # memory nor compares GPU (TF32) sums against a 1e-5 bound.
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                       "CUDA_VISIBLE_DEVICES": os.environ.get(
                           "CUDA_VISIBLE_DEVICES", "")}
        # A chief exporting after multi-worker training must not make the
        # checking process a member of its cluster.
        environment.pop("TF_CONFIG", None)
        code = ("import sys; from zoo.export_checks import _session_main; "
                "_session_main(sys.argv[1])")
        try:
            completed = subprocess.run(
                [sys.executable, "-c", code, folder], env=environment,
                capture_output=True, text=True, timeout=timeout,
                cwd=_package_root())
        except subprocess.TimeoutExpired:
            message = f"the checking process timed out after {timeout} s"
            return [[CheckResult(FRESH_PROCESS, FAIL, message),
                     CheckResult(WARMUP, FAIL, message)] for _ in items]
        results_path = os.path.join(folder, "results.json")
        if completed.returncode != 0 or not os.path.isfile(results_path):
            tail = completed.stderr.strip().splitlines()[-3:]
            message = ("the checking process failed with exit code "
                       f"{completed.returncode}: {' '.join(tail)}")
            return [[CheckResult(FRESH_PROCESS, FAIL, message),
                     CheckResult(WARMUP, FAIL, message)] for _ in items]
        with open(results_path) as handle:
            raw = json.load(handle)
    return [[CheckResult(*entry) for entry in pair] for pair in raw]


def _package_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _session_run(session, signature, feeds):
    fetches = {key: info.name for key, info in signature.outputs.items()}
    feed_dict = {signature.inputs[key].name: value
                 for key, value in feeds.items()}
    return session.run(fetches, feed_dict=feed_dict)


def _replay_warmup(session, meta_graph, logs):
    import tensorflow as tf

    from zoo import export

    if not logs:
        return CheckResult(WARMUP, SKIPPED, "no warm-up file")
    for number, log in enumerate(logs, 1):
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            request = log.predict_log.request
            feeds = {key: tf.make_ndarray(proto)
                     for key, proto in request.inputs.items()}
        elif kind == "classify_log":
            request = log.classify_log.request
            examples = request.input.example_list.examples
            feeds = {export.CLASSIFY_INPUT: np.array(
                [e.SerializeToString() for e in examples], dtype=object)}
        else:
            return CheckResult(WARMUP, FAIL,
                               f"record {number} is a {kind}, which the "
                               "checks do not replay")
        name = request.model_spec.signature_name or "serving_default"
        if name not in meta_graph.signature_def:
            return CheckResult(WARMUP, FAIL,
                               f"record {number} names signature {name!r},"
                               " which the export lacks")
        try:
            _session_run(session, meta_graph.signature_def[name], feeds)
        except Exception as error:  # noqa: BLE001 - reported as a failure
            return CheckResult(WARMUP, FAIL,
                               f"record {number} ({name!r}) failed: "
                               f"{type(error).__name__}: {error}")
    return CheckResult(WARMUP, PASS, f"{len(logs)} records ran")


def _session_check(entry, arrays):
    import tensorflow as tf

    from zoo import export

    export_dir = entry["export_dir"]
    # Read before the session's graph becomes the default: tf.data
    # iterates only in eager mode.
    logs = export.read_warmup(export_dir)
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(
            session, ["serve"], export_dir)
        worst = 0.0
        for case in entry["signatures"]:
            name = case["name"]
            if name not in meta_graph.signature_def:
                return [CheckResult(FRESH_PROCESS, FAIL,
                                    f"signature {name!r} is missing"),
                        CheckResult(WARMUP, SKIPPED)]
            feeds = {key: _decode_feed(value, arrays, value)
                     for key, value in case["feeds"].items()}
            outputs = _session_run(session, meta_graph.signature_def[name],
                                   feeds)
            for key, array_key in case["expected"].items():
                difference = _max_difference(outputs.get(key),
                                             arrays[array_key])
                if difference is None or difference > TOLERANCE:
                    return [CheckResult(
                        FRESH_PROCESS, FAIL,
                        f"signature {name!r} output {key!r} differs from "
                        f"the Keras model by {difference} (tolerance "
                        f"{TOLERANCE})"),
                        _replay_warmup(session, meta_graph, logs)]
                worst = max(worst, difference)
        parity = CheckResult(
            FRESH_PROCESS, PASS,
            f"{len(entry['signatures'])} signatures, max difference "
            f"{worst:.1e}")
        return [parity, _replay_warmup(session, meta_graph, logs)]


def _session_main(folder):
    """Entry point of the checking process: run the manifest in `folder`."""
    with open(os.path.join(folder, "manifest.json")) as handle:
        manifest = json.load(handle)
    arrays = np.load(os.path.join(folder, "arrays.npz"))
    results = []
    for entry in manifest:
        try:
            pair = _session_check(entry, arrays)
        except Exception as error:  # noqa: BLE001 - reported per export
            message = f"loading or running failed: {type(error).__name__}: "\
                      f"{error}"
            pair = [CheckResult(FRESH_PROCESS, FAIL, message[:2000]),
                    CheckResult(WARMUP, FAIL, "not run")]
        results.append([dataclasses.astuple(r) for r in pair])
    temporary = os.path.join(folder, "results.json.tmp")
    with open(temporary, "w") as handle:
        json.dump(results, handle)
    os.replace(temporary, os.path.join(folder, "results.json"))


# --- XLA ---------------------------------------------------------------------

def check_xla(item):
    """Compile `serving_default` with `jit_compile=True` and compare."""
    import tensorflow as tf

    loaded = tf.saved_model.load(item.export_dir)
    signature = loaded.signatures["serving_default"]
    compiled = tf.function(lambda feeds: signature(**feeds),
                           jit_compile=True)
    expected = keras_outputs(item.serving_model, list(item.spec.outputs),
                             item.inputs)
    feeds = {k: tf.constant(v) for k, v in item.inputs.items()}
    try:
        outputs = compiled(feeds)
    except Exception as error:  # noqa: BLE001 - reported as a failure
        message = str(error).strip().splitlines()
        return CheckResult(
            XLA, FAIL,
            "signature 'serving_default' does not compile with XLA: "
            + " ".join(message[:4])[:1500])
    result = compare_outputs(
        XLA, "the XLA-compiled 'serving_default'",
        {k: v.numpy() for k, v in outputs.items()}, expected, TOLERANCE)
    random_ops = sorted(
        op for op in ops_by_signature(item.export_dir)["serving_default"]
        if op.startswith("StatelessRandom"))
    if result.status == FAIL and random_ops:
        result = CheckResult(
            XLA, FAIL,
            f"{result.detail}. The signature draws random numbers "
            f"({', '.join(random_ops)}): unless the draws name "
            "alg='philox', XLA picks another generator and other numbers "
            "(tf.random.stateless_normal(..., alg='philox')).")
    return result


# --- mixed precision ---------------------------------------------------------

def _is_mixed(model):
    for layer in model._flatten_layers(include_self=True):
        policy = getattr(layer, "dtype_policy", None)
        if policy is not None and policy.compute_dtype != \
                policy.variable_dtype:
            return True
    return False


def _float32_signature(export_dir):
    from tensorflow.python.framework import dtypes

    signature = _signature_defs(export_dir)["serving_default"]
    problems = []
    for kind, tensors in (("input", signature.inputs),
                          ("output", signature.outputs)):
        for key, info in tensors.items():
            dtype = dtypes.as_dtype(info.dtype)
            if dtype.is_floating and dtype != dtypes.float32:
                problems.append(f"{kind} {key!r} is {dtype.name}")
    return problems


def check_mixed_precision(item, policy="mixed_bfloat16"):
    """Check that a mixed-precision model exports a float32 signature.

    A model already trained under a mixed policy is checked as exported.
    Otherwise the model is rebuilt under `policy` with the trained
    weights, exported to a temporary folder and checked there.
    """
    import keras
    import tensorflow as tf

    from zoo import export

    model = item.model if item.model is not None else item.serving_model
    if _is_mixed(item.serving_model):
        problems = _float32_signature(item.export_dir)
        if problems:
            return CheckResult(MIXED_PRECISION, FAIL,
                               "signature 'serving_default': "
                               + "; ".join(problems))
        return CheckResult(MIXED_PRECISION, PASS,
                           "trained mixed, float32 signature")
    previous = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy(policy)
        rebuilt = item.spec.build(**(item.hyperparameters or {}))
    except Exception as error:  # noqa: BLE001 - reported as a failure
        return CheckResult(MIXED_PRECISION, FAIL,
                           f"building under {policy} failed: {error}")
    finally:
        keras.config.set_dtype_policy(previous)
    try:
        rebuilt.set_weights(model.get_weights())
        serving = item.recipe.serving_model(rebuilt) if item.recipe \
            else rebuilt
        export_logger = logging.getLogger(export.__name__)
        level = export_logger.level
        with tempfile.TemporaryDirectory(prefix="zoo-mixed-") as base:
            # Keep the log quiet about this temporary export.
            export_logger.setLevel(logging.WARNING)
            try:
                exported = export.export_saved_model(
                    serving, item.spec, base_dir=base,
                    task_signatures=False)
            finally:
                export_logger.setLevel(level)
            problems = _float32_signature(exported.path)
            if problems:
                return CheckResult(MIXED_PRECISION, FAIL,
                                   f"under {policy}, signature "
                                   "'serving_default': "
                                   + "; ".join(problems))
            signature = tf.saved_model.load(exported.path).signatures[
                "serving_default"]
            outputs = signature(**{k: tf.constant(v)
                                   for k, v in item.inputs.items()})
    except Exception as error:  # noqa: BLE001 - reported as a failure
        return CheckResult(MIXED_PRECISION, FAIL,
                           f"export under {policy} failed: "
                           f"{type(error).__name__}: {str(error)[:500]}")
    expected = keras_outputs(item.serving_model, list(item.spec.outputs),
                             item.inputs)
    worst = 0.0
    for key, want in expected.items():
        got = outputs[key].numpy()
        if got.dtype.kind == "f" and not np.all(np.isfinite(got)):
            return CheckResult(MIXED_PRECISION, FAIL,
                               f"output {key!r} under {policy} is not "
                               "finite")
        worst = max(worst, _max_difference(got, want) or 0.0)
    return CheckResult(MIXED_PRECISION, PASS,
                       f"{policy}: float32 signature, max difference to "
                       f"float32 {worst:.1e}")


# --- TFLite ------------------------------------------------------------------

def convert_tflite(export_dir, output_path):
    """Convert `serving_default` to TFLite with built-in ops only.

    Args:
        export_dir: The SavedModel folder.
        output_path: Where the `.tflite` file goes; written aside and
            renamed.

    Returns:
        `output_path`.

    Raises:
        TFLiteUnsupportedError: the converter rejects the model. The
            message names the ops the converter listed.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(
        export_dir, signature_keys=["serving_default"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        content = converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter's own types
        ops = sorted(set(re.findall(r"'(tf\.\w+)' op", str(error))))
        reason = f"ops {', '.join(ops)} are not TFLite built-ins" if ops \
            else str(error).strip().splitlines()[0][:500]
        raise TFLiteUnsupportedError(
            f"TFLite cannot convert {export_dir!r} with built-in ops only: "
            f"{reason}. Export without --format tflite, or replace those "
            "ops in the model.") from error
    temporary = f"{output_path}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(content)
    os.replace(temporary, output_path)
    return output_path


def check_tflite(item, tflite_path=None):
    """Convert (unless `tflite_path` exists) and compare in the interpreter."""
    import tensorflow as tf

    tflite_path = tflite_path or os.path.join(item.export_dir, TFLITE_FILE)
    if not os.path.isfile(tflite_path):
        try:
            convert_tflite(item.export_dir, tflite_path)
        except TFLiteUnsupportedError as error:
            reason = str(error).split(": ", 1)[-1].split(". Export")[0]
            return CheckResult(TFLITE, UNSUPPORTED, reason)
    try:
        with warnings.catch_warnings():
            # TF 2.21 warns that tf.lite.Interpreter is deprecated.
            warnings.simplefilter("ignore", UserWarning)
            interpreter = tf.lite.Interpreter(model_path=tflite_path)
        runner = interpreter.get_signature_runner("serving_default")
        outputs = runner(**{k: np.asarray(v)
                            for k, v in item.inputs.items()})
    except Exception as error:  # noqa: BLE001 - reported as a failure
        return CheckResult(TFLITE, FAIL,
                           f"the TFLite interpreter failed: "
                           f"{type(error).__name__}: {str(error)[:800]}")
    expected = keras_outputs(item.serving_model, list(item.spec.outputs),
                             item.inputs)
    return compare_outputs(TFLITE, "the TFLite interpreter", outputs,
                           expected, TFLITE_TOLERANCE)


# --- all checks --------------------------------------------------------------

def run_checks(items, mixed_precision=True):
    """Run every check on each export; the fresh-process ones share a process.

    Args:
        items: `ExportUnderTest`s.
        mixed_precision: Run the mixed-precision rebuild. Defaults to
            `True`.

    Returns:
        A list, per item, of `CheckResult`s in `CHECKS` order.
    """
    fresh = fresh_process_checks(items)
    results = []
    for item, (parity, warmup) in zip(items, fresh):
        checks = [_guarded(OP_AUDIT, audit_ops, item.export_dir),
                  _guarded(SIGNATURE, check_signature, item.export_dir,
                           item.spec, item.serving_model),
                  parity, warmup, _guarded(XLA, check_xla, item)]
        if mixed_precision:
            checks.append(_guarded(MIXED_PRECISION, check_mixed_precision,
                                   item))
        else:
            checks.append(CheckResult(MIXED_PRECISION, SKIPPED))
        checks.append(_guarded(TFLITE, check_tflite, item) if item.tflite
                      else CheckResult(TFLITE, SKIPPED))
        results.append(checks)
    return results


def _guarded(name, check, *args):
    """Run `check(*args)`; an exception becomes a failed `name` result.

    A damaged export (missing variables, a truncated saved_model.pb) then
    still gets every check reported by name.
    """
    try:
        return check(*args)
    except Exception as error:  # noqa: BLE001 - reported as a failure
        lines = str(error).strip().splitlines() or [type(error).__name__]
        return CheckResult(name, FAIL,
                           f"{type(error).__name__}: {lines[0][:500]}")


def raise_on_failure(name, results):
    """Raise `ExportCheckError` naming each failed check of `results`."""
    failed = [r for r in results if not r.passed]
    if failed:
        raise ExportCheckError(
            f"Export of {name!r} failed {len(failed)} check(s): "
            + "; ".join(f"{r.name}: {r.detail}" for r in failed),
            results)


def sample_inputs(recipe, bundle, count=SAMPLE_COUNT):
    """Return the recipe's real serving inputs as float32/int arrays."""
    inputs = recipe.sample_inputs(bundle, count)
    return {k: np.asarray(v) for k, v in inputs.items()}


# --- the export matrix ------------------------------------------------------

@dataclasses.dataclass
class MatrixRow:
    """One model's line of the export matrix."""

    name: str
    family: str
    task: str
    signatures: tuple
    results: dict


def _failed_row(spec, message):
    results = {name: CheckResult(name, FAIL, message) for name in CHECKS}
    return MatrixRow(spec.name, spec.family, spec.task, (), results)


def prepare_model(name, work_dir, tflite=True):
    """Train model `name` one step on its smoke config and export it.

    One step on real data, as the registry-wide smoke test does, so
    recipes that set state while training (normalizers, stored patterns)
    have it. The export goes to `work_dir/saved_models` with warm-up
    requests.

    Returns:
        An `ExportUnderTest`.
    """
    from training import trainer
    from zoo import export
    from zoo.registry import get_spec

    spec = get_spec(name)
    result = trainer.train(
        name, overrides=dict(spec.smoke), epochs=1, steps_per_epoch=1,
        run_dir=os.path.join(work_dir, "runs", name))
    serving = result.recipe.serving_model(result.model)
    inputs = sample_inputs(result.recipe, result.bundle)
    exported = export.export_saved_model(
        serving, spec, base_dir=os.path.join(work_dir, "saved_models"),
        warmup_inputs=inputs)
    return ExportUnderTest(
        spec=spec, export_dir=exported.path, serving_model=serving,
        inputs=inputs, model=result.model, recipe=result.recipe,
        hyperparameters=result.hyperparameters, tflite=tflite)


def build_matrix(names=None, work_dir=None, tflite=True, progress=None):
    """Check every registered model (or `names`) and return `MatrixRow`s.

    Args:
        names: Model names. Defaults to every registered model.
        work_dir: Folder for runs and exports. Defaults to a temporary
            folder removed afterwards.
        tflite: Include the TFLite conversion. Defaults to `True`.
        progress: Optional callable receiving each model name as its
            preparation starts.

    Returns:
        A list of `MatrixRow`, in the order of `names`.
    """
    from zoo.registry import get_spec, list_models

    names = list(names) if names is not None else list_models()
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="zoo-matrix-") as folder:
            return build_matrix(names, folder, tflite, progress)
    prepared, rows = [], {}
    for name in names:
        if progress is not None:
            progress(name)
        spec = get_spec(name)
        try:
            prepared.append(prepare_model(name, work_dir, tflite))
        except Exception as error:  # noqa: BLE001 - one row per model
            logger.warning("Model %s could not be exported: %s", name,
                           error)
            rows[name] = _failed_row(
                spec, f"training step or export failed: "
                f"{type(error).__name__}: {str(error)[:500]}")
    for item, results in zip(prepared, run_checks(prepared)):
        rows[item.spec.name] = MatrixRow(
            item.spec.name, item.spec.family, item.spec.task,
            tuple(sorted(_signature_defs(item.export_dir))),
            {r.name: r for r in results})
    return [rows[name] for name in names]


def render_matrix(rows, command="zoo export-matrix"):
    """Return the Markdown page of the export matrix for `rows`."""
    import keras
    import tensorflow as tf

    lines = [
        "# Export matrix",
        "",
        f"Generated by `{command}` with TensorFlow {tf.__version__} and "
        f"Keras {keras.__version__} on CPU. Do not edit by hand.",
        "",
        "One row per registered model, on its `smoke` configuration after "
        "one training step on its real data set. Each column is one check "
        "of `zoo.export_checks` (see docs/serving.md): `pass`, `FAIL` "
        "(the note below the table says why), `unsupported` (TFLite's "
        "built-in ops do not cover the model; the note names the ops) or "
        "`n/a`.",
        "",
        "| model | family | task | signatures | "
        + " | ".join(CHECKS) + " |",
        "|" + "---|" * (4 + len(CHECKS)),
    ]
    notes = []
    for row in rows:
        cells = []
        for check in CHECKS:
            result = row.results.get(check)
            if result is None or result.status == SKIPPED:
                cells.append(SKIPPED)
            elif result.status == PASS:
                cells.append(PASS)
            elif result.status == UNSUPPORTED:
                notes.append(f"{row.name}, {check}: {result.detail}")
                cells.append(f"unsupported [{len(notes)}]")
            else:
                notes.append(f"{row.name}, {check}: {result.detail}")
                cells.append(f"FAIL [{len(notes)}]")
        signatures = ", ".join(f"`{s}`" for s in row.signatures
                               if not s.startswith("__"))
        lines.append(f"| {row.name} | {row.family} | {row.task} | "
                     f"{signatures or '-'} | " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "## Notes", ""]
        # Keras error messages carry terminal colour codes.
        lines += [f"{number}. "
                  + re.sub(r"\x1b\[[0-9;]*m", "", note).replace("\n", " ")[
                      :400]
                  for number, note in enumerate(notes, 1)]
    passing = sum(all(r.passed for r in row.results.values())
                  for row in rows)
    lines += ["", f"{passing} of {len(rows)} models pass every check "
              "(an unsupported TFLite conversion is not a failure).", ""]
    return "\n".join(lines)


def write_matrix(path, rows, command="zoo export-matrix"):
    """Write `render_matrix(rows)` to `path` through a temporary file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        handle.write(render_matrix(rows, command))
    os.replace(temporary, path)
    return path


# --- export with checks, as `zoo export` runs it ------------------------------

def export_and_check(serving_model, spec, inputs, *, model=None,
                     recipe=None, hyperparameters=None, base_dir=None,
                     version=None, tflite=False, version_policy=None,
                     check=True):
    """Export, run every check on the unfinished folder, then publish it.

    The checks run before the version folder is renamed into place, so a
    model failing one never appears as a version TF Serving would load.

    Args:
        serving_model: The Keras model to export.
        spec: Its `ModelSpec`.
        inputs: Real serving inputs (warm-up requests and parity checks).
        model: The whole trained model. Defaults to `serving_model`.
        recipe: The training recipe. Defaults to `None`.
        hyperparameters: Builder arguments. Defaults to the record's.
        base_dir: TF Serving base folder. Defaults to `"saved_models"`.
        version: Version number. Defaults to the next free one.
        tflite: Also write `model.tflite` into the version folder and
            check it. Defaults to `False`.
        version_policy: Policy for `models.config`. Defaults to the
            current one.
        check: Run the checks. Defaults to `True`.

    Returns:
        `(ExportResult, list of CheckResult)`.

    Raises:
        ExportCheckError: a check failed; its `results` list them all.
    """
    from zoo import export

    results = []

    def verify(folder):
        if tflite:
            convert_tflite(folder, os.path.join(folder, TFLITE_FILE))
        if not check:
            return
        item = ExportUnderTest(
            spec=spec, export_dir=folder, serving_model=serving_model,
            inputs=inputs, model=model, recipe=recipe,
            hyperparameters=hyperparameters or dict(spec.defaults),
            tflite=tflite)
        results.extend(run_checks([item])[0])
        raise_on_failure(spec.name, results)

    exported = export.export_saved_model(
        serving_model, spec, base_dir=base_dir or export.DEFAULT_BASE,
        version=version, warmup_inputs=inputs, verify=verify,
        version_policy=version_policy)
    return exported, results


def check_existing(export_dir, serving_model, spec, inputs, *, model=None,
                   recipe=None, hyperparameters=None):
    """Run every check on an export already in place.

    Returns:
        A list of `CheckResult`; TFLite is checked when the version folder
        contains a `model.tflite`.
    """
    item = ExportUnderTest(
        spec=spec, export_dir=export_dir, serving_model=serving_model,
        inputs=inputs, model=model, recipe=recipe,
        hyperparameters=hyperparameters or dict(spec.defaults),
        tflite=os.path.isfile(os.path.join(export_dir, TFLITE_FILE)))
    return run_checks([item])[0]
