"""Train the `som` model on the digits and draw its map.

The map trains through `zoo train`'s own trainer with the model's registry
settings (a 10x10 grid, 20 epochs, batch 8), so the picture shows the same
model that `zoo train som` produces.
"""

import logging
import tempfile

logger = logging.getLogger(__name__)


def run(path, seed=0, epochs=None, overrides=None):
    """Train a map on the digits, write its PNG and return its errors.

    Args:
        path: PNG file to write.
        seed: Seed of the initial codebook and the shuffling. Defaults to 0.
        epochs: Training epochs. Defaults to the registry's setting.
        overrides: Hyperparameters of the `som` model, such as
            `{"rows": 6}`. Defaults to the registry's.

    Returns:
        A dict with the quantization error of the initial codebook on the
        training split, its mean over each training epoch (each batch
        measured before its update), and the final quantization and
        topographic errors on the test split.
    """
    from training import trainer
    from zoo import datasets
    from zoo.models import som
    from zoo.registry import get_spec

    spec = get_spec("som")
    bundle = datasets.load(spec.dataset)
    # The trainer seeds and builds in the same order, so this is the
    # codebook the training starts from.
    trainer.set_seed(seed)
    initial = spec.build(**dict(overrides or {}))
    initial_error = initial.quantization_error(bundle.train.x)
    with tempfile.TemporaryDirectory(prefix="zoo-som-map-") as run_dir:
        result = trainer.train("som", seed=seed, epochs=epochs,
                               overrides=overrides, run_dir=run_dir)
    model = result.model
    som.plot_map(model, bundle.test.x, bundle.test.y, path)
    return {
        "initial_quantization_error": initial_error,
        "quantization_error_per_epoch": [
            float(v) for v in result.history["quantization_error"]],
        "test_quantization_error": model.quantization_error(bundle.test.x),
        "test_topographic_error": model.topographic_error(bundle.test.x),
    }
