"""Tests of the augmentation pipelines on real batches and a real export."""

import numpy as np
import pytest
import tensorflow as tf

from training import augment

IMAGES = np.random.default_rng(0).random((6, 8, 8, 1)).astype("float32")
SERIES = np.random.default_rng(1).random((6, 20, 2)).astype("float32")
SETS = np.random.default_rng(2).random((6, 5, 3)).astype("float32")
LABELS = np.arange(6, dtype="int32")

CASES = {
    "rotate:15": IMAGES,
    "translate:0.2": IMAGES,
    "noise:0.05": IMAGES,
    "flip:h": IMAGES,
    "flip:v": IMAGES,
    "dihedral": IMAGES,
    "cutout:3": IMAGES,
    "cutout:0.4": IMAGES,
    "jitter:0.03": SERIES,
    "scale:0.1": SERIES,
    "magwarp:0.2": SERIES,
    "slice:0.2": SERIES,
    "permute": SETS,
}


@pytest.mark.parametrize("spec", sorted(CASES))
def test_same_seed_same_batch(spec):
    x = CASES[spec]
    first, labels = augment.build_pipeline(spec, seed=3)(x, LABELS)
    again, _ = augment.build_pipeline(spec, seed=3)(x, LABELS)
    other, _ = augment.build_pipeline(spec, seed=4)(x, LABELS)

    assert first.shape == x.shape
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert not np.array_equal(first.numpy(), other.numpy())
    assert not np.array_equal(first.numpy(), x)
    np.testing.assert_array_equal(labels, LABELS)


# One pipeline per data kind contains every step of that kind, so one XLA
# compilation per kind covers every step.
XLA_CASES = {
    "images": ("rotate:15,translate:0.2,noise:0.05,flip:h,flip:v,dihedral,"
               "cutout:3", IMAGES),
    "series": ("jitter:0.03,scale:0.1,magwarp:0.2,slice:0.2", SERIES),
    "sets": ("permute,noise:0.1", SETS),
}


@pytest.mark.parametrize("kind", sorted(XLA_CASES))
def test_steps_compile_under_xla(kind):
    spec, x = XLA_CASES[kind]
    pipeline = augment.build_pipeline(spec, seed=0)
    seed = tf.constant([7, 11], tf.int32)
    compiled = tf.function(pipeline.apply, jit_compile=True)

    expected, _ = pipeline.apply(x, LABELS, seed)
    result, _ = compiled(x, LABELS, seed)

    np.testing.assert_allclose(result.numpy(), expected.numpy(), atol=1e-5)


def test_seed_derivation_has_no_xla_kernel():
    pipeline = augment.build_pipeline("noise:0.1", seed=0)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="Fingerprint|SerializeTensor"):
        tf.function(pipeline, jit_compile=True)(IMAGES, LABELS)


def test_tf_data_map_is_reproducible():
    def batches(seed):
        dataset = tf.data.Dataset.from_tensor_slices((IMAGES, LABELS))
        dataset = dataset.shuffle(6, seed=1).batch(2).map(
            augment.build_pipeline("rotate:20,translate:0.1,noise:0.05",
                                   seed=seed),
            num_parallel_calls=4, deterministic=True)
        return [x.numpy() for x, _ in dataset]

    first, again = batches(0), batches(0)

    assert len(first) == 3
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], batches(1)[0])


def test_graph_has_no_py_function():
    pipeline = augment.build_pipeline(
        "rotate:15,translate:0.1,noise:0.05,flip:h,dihedral,cutout:2",
        seed=0)
    graph = tf.function(pipeline).get_concrete_function(
        tf.TensorSpec([None, 8, 8, 1]), tf.TensorSpec([None], tf.int32)
    ).graph
    ops = {op.type for op in graph.get_operations()}

    assert not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}
    assert "Fingerprint" in ops


def test_geometry_of_steps():
    # A quarter turn of a centered 3x3 pattern, by the rotate warp, equals
    # np.rot90 inside the image.
    image = np.zeros((1, 5, 5, 1), "float32")
    image[0, 1, 2, 0] = 1.0
    quarter = tf.constant([[[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]])
    turned = augment._warp(tf.constant(image), quarter).numpy()
    np.testing.assert_allclose(turned, np.rot90(image, 1, axes=(1, 2)),
                               atol=1e-6)

    cut = augment.build_pipeline("cutout:2", seed=0)(
        np.ones((4, 8, 8, 1), "float32"), LABELS[:4])[0].numpy()
    zeros = (cut == 0).reshape(4, -1).sum(axis=1)
    assert set(zeros) <= {1, 2, 4}
    assert zeros.max() == 4

    permuted = augment.build_pipeline("permute", seed=0)(SETS, LABELS)[0]
    np.testing.assert_allclose(np.sort(permuted.numpy(), axis=1),
                               np.sort(SETS, axis=1))

    sliced = augment.build_pipeline("slice:0.5", seed=0)(SERIES, LABELS)[0]
    assert sliced.numpy().min() >= SERIES.min() - 1e-6
    assert sliced.numpy().max() <= SERIES.max() + 1e-6


@pytest.mark.parametrize("spec, message", [
    ("rotat:15", "Did you mean rotate"),
    ("rotate:-3", "Received: rotate:-3"),
    ("translate:1.5", "fraction in"),
    ("flip:x", "flip:h"),
    ("dihedral:2", "takes no value"),
    ("", "comma-separated"),
])
def test_bad_spec_is_rejected(spec, message):
    with pytest.raises(ValueError, match=message):
        augment.build_pipeline(spec)


def test_wrong_data_kind_is_rejected():
    with pytest.raises(ValueError, match="time-series batches of rank 3"):
        augment.build_pipeline("magwarp:0.2")(IMAGES, LABELS)
    with pytest.raises(ValueError, match="square images"):
        augment.build_pipeline("dihedral")(IMAGES[:, :, :6], LABELS)


@pytest.mark.slow
def test_export_of_augmented_run_has_no_augmentation(tmp_path):
    from training import trainer
    from zoo import export
    from zoo.registry import get_spec

    result = trainer.train(
        "cnn", overrides={"filters": [4], "dense_units": 8,
                          "convs_per_block": 1},
        epochs=1, steps_per_epoch=2, augment="rotate:15,noise:0.05,cutout:2",
        run_dir=str(tmp_path / "run"))
    exported = export.export_saved_model(result.model, get_spec("cnn"),
                                         base_dir=str(tmp_path / "serving"))
    loaded = tf.saved_model.load(exported.path)
    signature = loaded.signatures["serving_default"]
    ops = {op.type for op in signature.graph.get_operations()}
    for function in signature.graph.as_graph_def().library.function:
        ops |= {node.op for node in function.node_def}

    assert result.settings["seed"] == 0
    assert not {op for op in ops if "Random" in op or op in (
        "Fingerprint", "SerializeTensor")}
    assert "Conv2D" in ops


def test_zoo_augment_writes_grid(tmp_path, capsys):
    from zoo import cli

    path = tmp_path / "grid.png"
    code = cli.main(["augment", "digits", "--augment", "rotate:15,cutout:2",
                     "--out", str(path), "--count", "4", "--variants", "2"])
    output = capsys.readouterr().out
    bad = cli.main(["augment", "digits", "--augment", "spin:3", "--out",
                    str(tmp_path / "bad.png")])
    error = capsys.readouterr().err

    assert code == 0
    assert "4 examples of digits and 2 augmented copies" in output
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert bad == 2
    assert "Unknown augmentation step 'spin'" in error
    assert not (tmp_path / "bad.png").exists()


def test_zoo_augment_series_panels(tmp_path):
    from zoo import cli

    path = tmp_path / "series.png"
    code = cli.main(["augment", "sunspots", "--augment",
                     "magwarp:0.2,slice:0.1", "--out", str(path),
                     "--count", "3"])

    assert code == 0
    assert path.stat().st_size > 1000
