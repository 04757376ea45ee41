"""SavedModel exports in TF Serving's layout.

TF Serving watches a base path `saved_models/<name>/` and loads the highest
integer version folder inside it. A version is written to a hidden folder
beside the versions and renamed into place, so a half-written version never
appears under an integer name.
"""

import dataclasses
import logging
import os
import shutil
import uuid

logger = logging.getLogger(__name__)

DEFAULT_BASE = "saved_models"
TEMPORARY_PREFIX = ".tmp-"


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where an export went: its version folder and version number."""

    path: str
    version: int
    signature_inputs: dict
    signature_outputs: dict


def existing_versions(model_base):
    """Return the sorted integer versions under a model's base path.

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
        if entry.isdigit() and int(entry) > 0:
            versions.append(int(entry))
            continue
        raise ValueError(
            f"Found {os.path.join(model_base, entry)!r} under the TF Serving "
            "base path, but every entry there must be a positive integer "
            "version folder. Move or delete it, or export to another base "
            "with `--base`."
        )
    return sorted(versions)


def serving_signature(model, inputs, outputs):
    """Return `(input_specs, output_names)` for a Keras model.

    Shapes come from the model (so a configured input size is honored) and
    names and dtypes from the registry's serving record.
    """
    import tensorflow as tf

    model_inputs = list(model.inputs)
    if len(model_inputs) != len(inputs):
        raise ValueError(
            f"Model '{model.name}' has {len(model_inputs)} inputs but the "
            f"serving record names {len(inputs)}: {list(inputs)}."
        )
    specs = []
    for tensor, (name, record) in zip(model_inputs, inputs.items()):
        shape = (None,) + tuple(tensor.shape[1:])
        specs.append(tf.TensorSpec(shape, record.dtype, name=name))
    model_outputs = model.outputs if isinstance(model.outputs, list) else [
        model.outputs]
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
        named = {}
        for name, value in zip(output_names, result):
            if value.dtype.is_floating and value.dtype != tf.float32:
                value = tf.cast(value, tf.float32)
            named[name] = value
        return named

    return serve


def next_version(model_base):
    versions = existing_versions(model_base)
    return (versions[-1] + 1) if versions else 1


def export_saved_model(model, spec, base_dir=DEFAULT_BASE, version=None,
                       name=None, extra_endpoints=None):
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

    Returns:
        An `ExportResult`.

    Raises:
        ValueError: `version` is not a positive integer or already exists,
            or the base path contains a non-integer entry.
    """
    import keras

    name = name or spec.name
    model_base = os.path.join(base_dir, name)
    if version is not None and (not isinstance(version, int) or version < 1):
        raise ValueError(
            f"`version` must be a positive integer. Received: {version!r}"
        )
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
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=make_serving_function(model, input_specs, output_names),
        input_signature=input_specs,
    )
    for endpoint, (function, signature) in (extra_endpoints or {}).items():
        archive.add_endpoint(name=endpoint, fn=function,
                             input_signature=signature)

    os.makedirs(model_base, exist_ok=True)
    temporary = os.path.join(
        model_base, f"{TEMPORARY_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
    try:
        archive.write_out(temporary, verbose=False)
        os.rename(temporary, target)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
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
    return ExportResult(
        path=target,
        version=version,
        signature_inputs={s.name: (tuple(s.shape), s.dtype.name)
                          for s in input_specs},
        signature_outputs=list(output_names),
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
