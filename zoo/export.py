"""SavedModel exports in TF Serving's layout.

TF Serving watches a base path `saved_models/<name>/` and loads the highest
integer version folder inside it. A version is written to a hidden folder
beside the versions, completed there (signature metadata, warm-up
requests, optional checks) and only then renamed into place, so a
half-written version never appears under an integer name. Hidden temporary
folders left by a killed export are removed by the next export.

Besides `serving_default`, classifiers get the signatures TF Serving's
other APIs expect:

- `classify`: serialized `tf.Example` protos in (`inputs`), `classes` and
  `scores` out, with the method name of TF Serving's Classify API, so the
  REST `:classify` call works.
- `serving_png` (image classifiers only): encoded PNG bytes in
  (`image_bytes`), decoded, scaled to [0, 1] and resized inside the graph.

`saved_models/models.config`, TF Serving's model config file, lists every
model under the base folder with its version policy and is rewritten after
each export.
"""

import dataclasses
import logging
import os
import shutil
import time
import uuid

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_BASE = "saved_models"
TEMPORARY_PREFIX = ".tmp-"
MODEL_CONFIG_FILE = "models.config"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# Mount point of the base folder inside the TF Serving container.
SERVING_MOUNT = "/models"
DEFAULT_VERSION_POLICY = "latest:1"
# A temporary folder whose writer process is gone, or older than this,
# belongs to an export that will never finish.
STALE_SECONDS = 24 * 3600

CLASSIFY_SIGNATURE = "classify"
CLASSIFY_INPUT = "inputs"
CLASSIFY_METHOD = "tensorflow/serving/classify"
PNG_SIGNATURE = "serving_png"
PNG_INPUT = "image_bytes"
CLASSIFIER_TASKS = ("classification", "image-classification",
                    "sequence-classification", "set-classification")
WARMUP_BATCH = 2


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Record of one export: its version folder and version number.

    Attributes:
        path: The version folder.
        version: The version number.
        signature_inputs: `serving_default` inputs, name to
            `(shape, dtype)`.
        signature_outputs: `serving_default` output names.
        signatures: Every signature name in the SavedModel.
        warmup_records: Number of warm-up requests written.
    """

    path: str
    version: int
    signature_inputs: dict
    signature_outputs: dict
    signatures: tuple = ("serving_default",)
    warmup_records: int = 0


def existing_versions(model_base):
    """Return the sorted integer versions under a model's base path.

    Hidden entries (names starting with `.`, such as the temporary folders
    of exports in progress) are skipped, as TF Serving skips them.

    Raises:
        ValueError: a visible entry is not a positive integer. TF Serving
            would skip it silently, so it is most likely a mistake.
    """
    if not os.path.isdir(model_base):
        return []
    versions = []
    for entry in sorted(os.listdir(model_base)):
        if entry.startswith("."):
            continue
        if entry.isascii() and entry.isdigit() and int(entry) > 0:
            if str(int(entry)) != entry:
                # TF Serving reads "007" as version 7; so would a later "7".
                raise ValueError(
                    f"Found {os.path.join(model_base, entry)!r}: version "
                    "folders must not have leading zeros, because TF "
                    f"Serving reads it as version {int(entry)}. Rename it "
                    f"to {str(int(entry))!r}."
                )
            versions.append(int(entry))
            continue
        raise ValueError(
            f"Found {os.path.join(model_base, entry)!r} under the TF Serving "
            "base path, but every entry there must be a positive integer "
            "version folder. Move or delete it, or export to another base "
            "with `--base`."
        )
    return sorted(versions)


def symbolic_tensors(model, attribute):
    """Return a model's symbolic `"inputs"` or `"outputs"` as a list.

    Returns `None` for a subclassed model never called on `keras.Input`s,
    which has no symbolic tensors (Keras raises AttributeError).
    """
    try:
        tensors = getattr(model, attribute)
    except AttributeError:
        return None
    if tensors is None:
        return None
    return list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]


def serving_signature(model, inputs, outputs):
    """Return `(input_specs, output_names)` for a Keras model.

    Shapes come from the model (so a configured input size is honored) and
    names and dtypes from the registry's serving record.
    """
    import tensorflow as tf

    model_inputs = symbolic_tensors(model, "inputs")
    if model_inputs is None:
        # A subclassed model has no symbolic inputs: the record's shapes
        # define the signature.
        return [tf.TensorSpec(record.shape, record.dtype, name=name)
                for name, record in inputs.items()], list(outputs)
    if len(model_inputs) != len(inputs):
        raise ValueError(
            f"Model '{model.name}' has {len(model_inputs)} inputs but the "
            f"serving record names {len(inputs)}: {list(inputs)}."
        )
    specs = []
    for tensor, (name, record) in zip(model_inputs, inputs.items()):
        shape = (None,) + tuple(tensor.shape[1:])
        specs.append(tf.TensorSpec(shape, record.dtype, name=name))
    model_outputs = symbolic_tensors(model, "outputs") or []
    if len(model_outputs) != len(outputs):
        raise ValueError(
            f"Model '{model.name}' has {len(model_outputs)} outputs but the "
            f"serving record names {len(outputs)}: {list(outputs)}."
        )
    return specs, list(outputs)


def make_serving_function(model, input_specs, output_names):
    """Return a function mapping named inputs to a dict of named outputs.

    Outputs are cast to float32, so a model trained under a mixed-precision
    policy still serves float32 tensors.
    """
    import tensorflow as tf

    def serve(*tensors):
        result = model(list(tensors) if len(tensors) > 1 else tensors[0],
                       training=False)
        if not isinstance(result, (list, tuple)):
            result = [result]
        if len(result) != len(output_names):
            raise ValueError(
                f"Model '{model.name}' returns {len(result)} outputs but "
                f"the serving record names {len(output_names)}: "
                f"{output_names}.")
        named = {}
        for name, value in zip(output_names, result):
            if value.dtype.is_floating and value.dtype != tf.float32:
                value = tf.cast(value, tf.float32)
            named[name] = value
        return named

    return serve


# --- signatures for TF Serving's classify API and image bytes ----------------

def _single_float_input(input_specs):
    if len(input_specs) != 1 or input_specs[0].dtype.name != "float32":
        return None
    shape = input_specs[0].shape
    if any(d is None for d in shape[1:]):
        return None
    return input_specs[0]


def classifier_output(spec, model):
    """Return the name of a classifier's probability output, else `None`.

    A model counts as a classifier when its task is a classification task
    and it has one float output of shape `(batch, num_classes)`.
    """
    if spec.task not in CLASSIFIER_TASKS or len(spec.outputs) != 1:
        return None
    outputs = symbolic_tensors(model, "outputs")
    shape = tuple(outputs[0].shape) if outputs else \
        next(iter(spec.outputs.values())).shape
    if len(shape) != 2 or shape[1] is None or shape[1] < 2:
        return None
    return next(iter(spec.outputs))


def image_input_shape(spec, input_specs):
    """Return `(height, width, channels)` of an image classifier's input.

    Returns `None` unless the task is image classification and the only
    input is a float32 `(batch, height, width, channels)` tensor with 1, 3
    or 4 channels, the channel counts PNG stores.
    """
    if spec.task != "image-classification":
        return None
    single = _single_float_input(input_specs)
    if single is None or len(single.shape) != 4:
        return None
    height, width, channels = (int(d) for d in single.shape[1:])
    if channels not in (1, 3, 4):
        return None
    return height, width, channels


def decode_images(image_bytes, height, width, channels):
    """Decode a batch of PNG strings into float32 images in [0, 1].

    Each image is decoded as 16-bit (8-bit PNGs are scaled up exactly),
    scaled to [0, 1] and resized bilinearly to `(height, width)`, so
    images of any size are accepted. The export's `serving_png` signature
    and the export checks both call this function.

    Args:
        image_bytes: String tensor `(batch,)` of encoded PNGs.
        height: Output height.
        width: Output width.
        channels: Output channels (1, 3 or 4).

    Returns:
        A float32 tensor `(batch, height, width, channels)`.
    """
    import tensorflow as tf

    def decode_one(encoded):
        image = tf.io.decode_png(encoded, channels=channels,
                                 dtype=tf.uint16)  # (h, w, channels)
        image = tf.image.convert_image_dtype(image, tf.float32)
        image = tf.image.resize(image, (height, width))
        return tf.ensure_shape(image, (height, width, channels))

    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    return tf.map_fn(
        decode_one, image_bytes,
        fn_output_signature=tf.TensorSpec((height, width, channels),
                                          tf.float32),
    )


def encode_png(images):
    """Encode float images in [0, 1] as 16-bit PNG bytes, one per image.

    Args:
        images: Array `(batch, height, width, channels)` in [0, 1].

    Returns:
        A list of `bytes`, one encoded PNG per image.
    """
    import tensorflow as tf

    images = np.asarray(images, dtype="float32")
    if images.ndim != 4:
        raise ValueError(
            "`images` must be (batch, height, width, channels). "
            f"Received shape: {images.shape}"
        )
    pixels = np.round(np.clip(images, 0.0, 1.0) * 65535).astype("uint16")
    return [tf.io.encode_png(tf.constant(p)).numpy() for p in pixels]


def make_examples(feature_name, values):
    """Return serialized `tf.Example`s, one float feature per row.

    Each row of `values` is flattened into the float list of feature
    `feature_name`, the form the `classify` signature parses.
    """
    import tensorflow as tf

    values = np.asarray(values, dtype="float32")
    serialized = []
    for row in values.reshape(len(values), -1):
        feature = tf.train.Feature(float_list=tf.train.FloatList(value=row))
        example = tf.train.Example(features=tf.train.Features(
            feature={feature_name: feature}))
        serialized.append(example.SerializeToString())
    return serialized


def task_endpoints(model, spec, input_specs, output_names):
    """Return the extra signatures TF Serving's APIs expect for this task.

    Args:
        model: The serving Keras model.
        spec: Its `ModelSpec`.
        input_specs: `serving_default` input specs.
        output_names: `serving_default` output names.

    Returns:
        `{signature_name: (function, input_signature)}`: `classify` for
        classifiers with one float input, `serving_png` for image
        classifiers. Empty for other models.
    """
    import tensorflow as tf

    endpoints = {}
    probability_name = classifier_output(spec, model)
    single = _single_float_input(input_specs)
    if probability_name is not None and single is not None:
        feature_name = single.name
        feature_shape = tuple(int(d) for d in single.shape[1:])
        num_classes = int((symbolic_tensors(model, "outputs") or [
            spec.outputs[probability_name]])[0].shape[1])
        labels = tf.constant([str(i) for i in range(num_classes)])
        serve = make_serving_function(model, input_specs, output_names)

        def classify(serialized):
            features = tf.io.parse_example(serialized, {
                feature_name: tf.io.FixedLenFeature(feature_shape,
                                                    tf.float32)})
            scores = serve(features[feature_name])[probability_name]
            batch = tf.shape(scores)[0]
            classes = tf.tile(labels[None, :], [batch, 1])
            return {"classes": classes, "scores": scores}

        endpoints[CLASSIFY_SIGNATURE] = (classify, [
            tf.TensorSpec((None,), tf.string, name=CLASSIFY_INPUT)])

    image_shape = image_input_shape(spec, input_specs)
    if probability_name is not None and image_shape is not None:
        serve = make_serving_function(model, input_specs, output_names)

        def serve_png(image_bytes):
            return serve(decode_images(image_bytes, *image_shape))

        endpoints[PNG_SIGNATURE] = (serve_png, [
            tf.TensorSpec((None,), tf.string, name=PNG_INPUT)])
    return endpoints


# --- warm-up requests --------------------------------------------------------

def warmup_logs(name, signatures, inputs):
    """Return TF Serving warm-up `PredictionLog`s for the given signatures.

    Args:
        name: Model name in the requests.
        signatures: Signature names present in the export.
        inputs: Real `serving_default` inputs, name to array; the first
            `WARMUP_BATCH` rows are used.

    Returns:
        A list of `tensorflow_serving.apis.prediction_log_pb2.PredictionLog`,
        one per signature that the inputs can feed.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import (classification_pb2, input_pb2,
                                         model_pb2, predict_pb2,
                                         prediction_log_pb2)

    batch = {k: np.asarray(v)[:WARMUP_BATCH] for k, v in inputs.items()}
    logs = []

    def model_spec(signature):
        return model_pb2.ModelSpec(name=name, signature_name=signature)

    def predict_log(signature, tensors):
        request = predict_pb2.PredictRequest(model_spec=model_spec(signature))
        for key, value in tensors.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        return prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request))

    logs.append(predict_log("serving_default", batch))
    single = next(iter(batch.items())) if len(batch) == 1 else None
    if CLASSIFY_SIGNATURE in signatures and single is not None:
        examples = input_pb2.ExampleList()
        for serialized in make_examples(*single):
            examples.examples.add().ParseFromString(serialized)
        request = classification_pb2.ClassificationRequest(
            model_spec=model_spec(CLASSIFY_SIGNATURE),
            input=input_pb2.Input(example_list=examples))
        logs.append(prediction_log_pb2.PredictionLog(
            classify_log=prediction_log_pb2.ClassifyLog(request=request)))
    if PNG_SIGNATURE in signatures and single is not None:
        encoded = np.array(encode_png(single[1]), dtype=object)
        logs.append(predict_log(PNG_SIGNATURE, {PNG_INPUT: encoded}))
    return logs


def write_warmup(export_dir, logs):
    """Write `logs` to `assets.extra/tf_serving_warmup_requests`."""
    import tensorflow as tf

    path = os.path.join(export_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def read_warmup(export_dir):
    """Return the `PredictionLog`s of an export's warm-up file."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(export_dir, WARMUP_FILE)
    if not os.path.isfile(path):
        return []
    logs = []
    for record in tf.data.TFRecordDataset(path):
        logs.append(prediction_log_pb2.PredictionLog.FromString(
            record.numpy()))
    return logs


# --- SavedModel metadata -----------------------------------------------------

def set_method_names(export_dir, method_names):
    """Set the `method_name` of signatures in `saved_model.pb`.

    TF 2 writes every signature as a Predict signature. TF Serving's
    Classify API checks for `tensorflow/serving/classify` when started with
    `--enable_signature_method_name_check`, so the `classify` signature
    gets that name. The fingerprint file is rewritten to match.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(export_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with open(path, "rb") as handle:
        saved_model.ParseFromString(handle.read())
    changed = False
    for meta_graph in saved_model.meta_graphs:
        for name, method in method_names.items():
            if name in meta_graph.signature_def:
                meta_graph.signature_def[name].method_name = method
                changed = True
    if not changed:
        return
    temporary = f"{path}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(saved_model.SerializeToString(deterministic=True))
    os.replace(temporary, path)
    try:
        from tensorflow.python.saved_model import fingerprinting_utils
    except ImportError:  # pragma: no cover - TF without fingerprints
        return
    fingerprinting_utils.write_fingerprint(export_dir)


# --- versions and temporary folders ------------------------------------------

def next_version(model_base):
    versions = existing_versions(model_base)
    return (versions[-1] + 1) if versions else 1


def _temporary_name(version):
    return (f"{TEMPORARY_PREFIX}{version}-{os.getpid()}-"
            f"{uuid.uuid4().hex[:8]}")


def _writer_alive(entry):
    # Entries are `.tmp-<version>-<pid>-<random>`; without a pid the
    # writer is unknown and only the age decides.
    parts = entry[len(TEMPORARY_PREFIX):].split("-")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temporaries(model_base, now=None):
    """Delete temporary folders of exports that can no longer finish.

    A folder is stale when the process that wrote it no longer runs on
    this host, or when it is older than `STALE_SECONDS`. Folders of
    exports still running are kept.

    Returns:
        The removed paths.
    """
    if not os.path.isdir(model_base):
        return []
    now = time.time() if now is None else now
    removed = []
    for entry in sorted(os.listdir(model_base)):
        if not entry.startswith(TEMPORARY_PREFIX):
            continue
        path = os.path.join(model_base, entry)
        try:
            age = now - os.path.getmtime(path)
        except FileNotFoundError:
            continue
        alive = _writer_alive(entry)
        if alive is False or age > STALE_SECONDS:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
            logger.info("Removed the unfinished export %s", path)
    return removed


# --- the export --------------------------------------------------------------

def _add_traced_endpoint(archive, name, function, signature):
    function = archive.add_endpoint(name=name, fn=function,
                                    input_signature=signature)
    try:
        function.get_concrete_function()
    except Exception as error:
        raise ValueError(
            f"Signature {name!r} cannot be traced into a TensorFlow graph: "
            f"{type(error).__name__}: {str(error).rstrip('.')}. A serving "
            "function must be "
            "made of TensorFlow ops; a Python-side step (NumPy on a tensor, "
            "`.numpy()`, a Python `if` on a tensor value) cannot run in TF "
            "Serving. Rewrite that step with TensorFlow or Keras ops."
        ) from error


def export_saved_model(model, spec, base_dir=DEFAULT_BASE, version=None,
                       name=None, extra_endpoints=None, *,
                       task_signatures=True, warmup_inputs=None,
                       verify=None, version_policy=None):
    """Export `model` as `base_dir/<name>/<version>/` for TF Serving.

    Args:
        model: The Keras model that serves (for a GAN, its generator).
        spec: The model's `ModelSpec`; its `inputs` and `outputs` name the
            `serving_default` signature.
        base_dir: Parent of the model's TF Serving base path. Defaults to
            `"saved_models"`.
        version: Integer version. Defaults to the next free one. An existing
            version is never overwritten.
        name: Model folder name. Defaults to `spec.name`.
        extra_endpoints: Optional `{signature_name: (function,
            input_signature)}` added beside `serving_default`.
        task_signatures: Add the task's extra signatures (`classify`,
            `serving_png`, see `task_endpoints`). Defaults to `True`.
        warmup_inputs: Real `serving_default` inputs, name to array, for
            the warm-up requests in `assets.extra`. Defaults to `None`
            (no warm-up file).
        verify: Optional callable receiving the finished temporary folder
            before it is renamed into place; an exception it raises
            aborts the export and no version folder appears.
        version_policy: Version policy of this model in `models.config`,
            such as `"latest:2"`, `"all"` or `"specific:1,3"`. Defaults to
            the policy already there, else `"latest:1"`.

    Returns:
        An `ExportResult`.

    Raises:
        ValueError: `version` is not a positive integer or already exists,
            the base path contains a non-integer entry, or a signature
            cannot be traced into a graph.
    """
    import keras

    name = name or spec.name
    model_base = os.path.join(base_dir, name)
    if version is not None and (not isinstance(version, int) or version < 1):
        raise ValueError(
            f"`version` must be a positive integer. Received: {version!r}"
        )
    if version_policy is not None:
        parse_version_policy(version_policy)
    clean_stale_temporaries(model_base)
    if version is None:
        version = next_version(model_base)
    else:
        existing_versions(model_base)
    target = os.path.join(model_base, str(version))
    if os.path.exists(target):
        raise ValueError(
            f"Version {version} already exists at {target!r}. Versions are "
            "never overwritten; omit `--version` to use the next free one."
        )

    input_specs, output_names = serving_signature(model, spec.inputs,
                                                  spec.outputs)
    endpoints = {}
    if task_signatures:
        endpoints.update(task_endpoints(model, spec, input_specs,
                                        output_names))
    endpoints.update(extra_endpoints or {})
    archive = keras.export.ExportArchive()
    archive.track(model)
    _add_traced_endpoint(
        archive, "serving_default",
        make_serving_function(model, input_specs, output_names), input_specs)
    for endpoint, (function, signature) in endpoints.items():
        _add_traced_endpoint(archive, endpoint, function, signature)
    signatures = ("serving_default",) + tuple(endpoints)

    os.makedirs(model_base, exist_ok=True)
    temporary = os.path.join(model_base, _temporary_name(version))
    warmup_count = 0
    try:
        archive.write_out(temporary, verbose=False)
        if CLASSIFY_SIGNATURE in endpoints:
            set_method_names(temporary, {CLASSIFY_SIGNATURE: CLASSIFY_METHOD})
        if warmup_inputs is not None:
            logs = warmup_logs(name, signatures, warmup_inputs)
            write_warmup(temporary, logs)
            warmup_count = len(logs)
        if verify is not None:
            verify(temporary)
        os.rename(temporary, target)
    except OSError as error:
        if os.path.exists(target):
            raise ValueError(
                f"Version {version} appeared at {target!r} while exporting "
                "(another export running at once?). Run the export again."
            ) from error
        raise
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
    logger.info("Exported %s version %d to %s", name, version, target)
    try:
        update_model_config(base_dir, name, version_policy)
    except ValueError as error:
        # The version is in place and servable; only the config is stale.
        logger.warning("Exported %s, but %s was not updated: %s", target,
                       MODEL_CONFIG_FILE, error)
    return ExportResult(
        path=target,
        version=version,
        signature_inputs={s.name: (tuple(s.shape), s.dtype.name)
                          for s in input_specs},
        signature_outputs=list(output_names),
        signatures=signatures,
        warmup_records=warmup_count,
    )


def resolve_version_dir(path):
    """Return a SavedModel folder: `path` itself or its highest version."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    if not os.path.isdir(path):
        raise ValueError(
            f"SavedModel folder not found: {path!r}. Pass a version folder "
            "such as saved_models/cnn/1 or a base path such as "
            "saved_models/cnn."
        )
    versions = existing_versions(path)
    if not versions:
        raise ValueError(
            f"No SavedModel in {path!r}: it has no saved_model.pb and no "
            "integer version folders. Export one with `zoo export NAME`."
        )
    return os.path.join(path, str(versions[-1]))


# --- TF Serving's model config file ------------------------------------------

def parse_version_policy(text):
    """Parse `"latest:N"`, `"all"` or `"specific:V1,V2"`.

    Returns:
        A `tensorflow_serving.config.file_system_storage_path_source_pb2.
        FileSystemStoragePathSourceConfig.ServableVersionPolicy`.

    Raises:
        ValueError: the text matches none of those forms.
    """
    from tensorflow_serving.config import (
        file_system_storage_path_source_pb2 as storage)

    policy_class = storage.FileSystemStoragePathSourceConfig \
        .ServableVersionPolicy
    kind, _, value = str(text).partition(":")
    try:
        if kind == "all" and not value:
            return policy_class(all=policy_class.All())
        if kind == "latest":
            count = int(value or 1)
            if count >= 1:
                return policy_class(
                    latest=policy_class.Latest(num_versions=count))
        if kind == "specific":
            versions = [int(v) for v in value.split(",")]
            if versions and all(v >= 1 for v in versions):
                return policy_class(
                    specific=policy_class.Specific(versions=versions))
    except ValueError:
        pass
    raise ValueError(
        "`version_policy` must be 'latest:N' (serve the N highest versions),"
        " 'all', or 'specific:V1,V2' with positive integers. "
        f"Received: {text!r}"
    )


def read_model_config(base_dir=DEFAULT_BASE):
    """Return the parsed `models.config` of `base_dir`, or `None`."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = os.path.join(base_dir, MODEL_CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    config = model_server_config_pb2.ModelServerConfig()
    with open(path) as handle:
        try:
            text_format.Parse(handle.read(), config)
        except text_format.ParseError as error:
            raise ValueError(
                f"{path!r} is not a valid TF Serving model config: {error}. "
                "Fix or delete it; the next export rewrites it."
            ) from error
    return config


def servable_models(base_dir=DEFAULT_BASE):
    """Return the model folders under `base_dir` that hold a SavedModel."""
    if not os.path.isdir(base_dir):
        return []
    names = []
    for entry in sorted(os.listdir(base_dir)):
        model_base = os.path.join(base_dir, entry)
        if entry.startswith(".") or not os.path.isdir(model_base):
            continue
        try:
            versions = existing_versions(model_base)
        except ValueError:
            continue
        if any(os.path.isfile(os.path.join(model_base, str(v),
                                           "saved_model.pb"))
               for v in versions):
            names.append(entry)
    return names


def update_model_config(base_dir=DEFAULT_BASE, name=None,
                        version_policy=None):
    """Rewrite `base_dir/models.config` to list every exported model.

    Each model keeps the version policy it has in the current file; `name`
    gets `version_policy` when one is given, and new models get
    `DEFAULT_VERSION_POLICY`. Base paths point where the container mounts
    the base folder (`/models/<name>`), as in the docker command that
    `zoo export` prints. The file is written aside and renamed.

    Returns:
        The path of the config file.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    existing = read_model_config(base_dir)
    policies = {}
    if existing is not None:
        for entry in existing.model_config_list.config:
            if entry.HasField("model_version_policy"):
                policies[entry.name] = entry.model_version_policy
    if name is not None and version_policy is not None:
        policies[name] = parse_version_policy(version_policy)
    config = model_server_config_pb2.ModelServerConfig()
    for model_name in servable_models(base_dir):
        entry = config.model_config_list.config.add()
        entry.name = model_name
        entry.base_path = f"{SERVING_MOUNT}/{model_name}"
        entry.model_platform = "tensorflow"
        entry.model_version_policy.CopyFrom(policies.get(
            model_name, parse_version_policy(DEFAULT_VERSION_POLICY)))
    path = os.path.join(base_dir, MODEL_CONFIG_FILE)
    os.makedirs(base_dir, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as handle:
        handle.write(text_format.MessageToString(config))
    os.replace(temporary, path)
    return path


# --- REST requests ------------------------------------------------------------

def _rounded(values):
    return np.round(np.asarray(values, dtype="float64"), 4).tolist()


def rest_requests(spec, signatures, inputs):
    """Return example TF Serving REST requests for an export.

    Args:
        spec: The model's `ModelSpec`.
        signatures: Signature names of the export.
        inputs: Real `serving_default` inputs; the first row is used.

    Returns:
        A list of `(verb, body)`: `"predict"` with the row format, and for
        classifiers `"classify"` with `examples` and a `serving_png`
        predict request with base64 PNG bytes, as TF Serving's REST API
        takes them.
    """
    import base64

    first = {k: np.asarray(v)[:1] for k, v in inputs.items()}
    if len(first) == 1:
        (key, value), = first.items()
        instances = _rounded(value) if value.dtype.kind == "f" \
            else value.tolist()
    else:
        instances = [{k: (_rounded(v[0]) if v.dtype.kind == "f"
                          else v[0].tolist()) for k, v in first.items()}]
    requests = [("predict", {"instances": instances})]
    if len(first) != 1:
        return requests
    if CLASSIFY_SIGNATURE in signatures:
        requests.append(("classify", {
            "signature_name": CLASSIFY_SIGNATURE,
            "examples": [{key: _rounded(value[0].reshape(-1))}],
        }))
    if PNG_SIGNATURE in signatures:
        encoded = base64.b64encode(encode_png(value)[0]).decode("ascii")
        requests.append(("predict", {
            "signature_name": PNG_SIGNATURE,
            "instances": [{PNG_INPUT: {"b64": encoded}}],
        }))
    return requests
