"""Self-organizing maps: registry record, recipe and the map's picture.

The Keras model lives in `zoo.layers.som`. The recipe sets the map's
decay schedule from the training settings: the learning rate starts at
`learning_rate` and both it and the neighbourhood radius reach their final
values at the last training step.
"""

import logging
import os

import numpy as np

from training.recipes import Recipe
from zoo.registry import register_model

logger = logging.getLogger(__name__)

_REFERENCES = (
    "Kohonen (1982). Self-organized formation of topologically correct "
    "feature maps. https://doi.org/10.1007/BF00337288",
    "Kiviluoto (1996). Topology preservation in self-organizing maps. "
    "https://doi.org/10.1109/ICNN.1996.548907",
)


class SOMRecipe(Recipe):
    """Kohonen updates with a schedule that decays over the whole run."""

    monitor = "val_quantization_error"
    monitor_mode = "min"

    def compile(self, model):
        model.compile()

    def fit(self, model, train, validation, callbacks, initial_epoch=0):
        steps = self.settings.get("steps_per_epoch")
        if steps is None:
            steps = int(train.cardinality())
        if steps < 1:
            raise ValueError(
                "The SOM schedule needs a known number of steps per epoch; "
                "pass `steps_per_epoch`. Received a training set of "
                f"cardinality {steps}."
            )
        model.decay_steps = max(1, steps * int(self.settings["epochs"]))
        model.initial_learning_rate = float(self.settings["learning_rate"])
        logger.info("SOM schedule: learning rate %.3g -> %.3g, radius "
                    "%.3g -> %.3g over %d steps",
                    model.initial_learning_rate, model.final_learning_rate,
                    model.initial_radius, model.final_radius,
                    model.decay_steps)
        return super().fit(model, train, validation, callbacks,
                           initial_epoch=initial_epoch)

    def evaluate(self, model, test, bundle):
        results = model.evaluate(test, verbose=0, return_dict=True)
        return {f"test_{k}": float(v) for k, v in results.items()}

    def serving_model(self, model):
        """Wrap the map as a functional model `features -> unit, coords`."""
        import keras

        inputs = keras.Input((model.input_dim,), name="features")
        unit, coordinates = model(inputs)
        unit = keras.layers.Identity(name="unit")(unit)
        coordinates = keras.layers.Identity(name="coordinates")(coordinates)
        return keras.Model(inputs, [unit, coordinates],
                           name=f"{model.name}_serving")


def unit_labels(model, x, y):
    """Return the majority label of the inputs mapped to each unit.

    Args:
        model: A `SelfOrganizingMap`.
        x: Inputs `(count, input_dim)`.
        y: Integer labels `(count,)`.

    Returns:
        `(labels, hits)`: the majority label per unit (-1 where no input
        maps) and the number of inputs per unit, both `(rows, columns)`.
    """
    units = np.asarray(model.best_matching_unit(x))
    y = np.asarray(y).astype(int)
    counts = np.zeros((model.num_units, int(y.max()) + 1), dtype=int)
    np.add.at(counts, (units, y), 1)
    hits = counts.sum(axis=1)
    labels = np.where(hits > 0, counts.argmax(axis=1), -1)
    shape = (model.rows, model.columns)
    return labels.reshape(shape), hits.reshape(shape)


def plot_map(model, x, y, path, image_shape=(8, 8)):
    """Write a PNG of a map trained on images.

    The left panel tiles every codebook vector as an image on the grid. The
    right panel colours each unit by the majority label of the inputs it
    wins, and prints that label and the number of those inputs.

    Args:
        model: A trained `SelfOrganizingMap` with `input_dim` equal to the
            image size.
        x: Flat images `(count, input_dim)`.
        y: Integer labels `(count,)`.
        path: PNG file to write (through a temporary file and a rename).
        image_shape: `(height, width)` of one image. Defaults to `(8, 8)`.

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height, width = image_shape
    if height * width != model.input_dim:
        raise ValueError(
            f"`image_shape` {image_shape} has {height * width} pixels but the "
            f"map's input_dim is {model.input_dim}. Pass the image shape of "
            "the data the map was trained on."
        )
    codebook = np.asarray(model.codebook).reshape(
        model.rows, model.columns, height, width)
    # A one-pixel NaN border, drawn in colour, separates the tiles.
    codebook = np.pad(codebook, ((0, 0), (0, 0), (0, 1), (0, 1)),
                      constant_values=np.nan)
    # (rows, height, columns, width) -> one mosaic image.
    mosaic = codebook.transpose(0, 2, 1, 3).reshape(
        model.rows * (height + 1), model.columns * (width + 1))
    labels, hits = unit_labels(model, x, y)

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 5.2))
    colormap = matplotlib.colormaps["gray_r"].with_extremes(
        bad="lightsteelblue")
    left.imshow(mosaic, cmap=colormap, interpolation="nearest")
    left.set_title(f"{model.rows}x{model.columns} codebook vectors")
    left.set_xticks([])
    left.set_yticks([])
    masked = np.ma.masked_less(labels, 0)
    right.imshow(masked, cmap="tab10", vmin=-0.5, vmax=9.5,
                 interpolation="nearest")
    for row in range(model.rows):
        for column in range(model.columns):
            if labels[row, column] < 0:
                continue
            right.text(column, row,
                       f"{labels[row, column]}\n{hits[row, column]}",
                       ha="center", va="center", fontsize=7)
    right.set_title("majority label / inputs per unit")
    right.set_xticks([])
    right.set_yticks([])
    quantization = model.quantization_error(x)
    topographic = model.topographic_error(x)
    figure.suptitle(f"quantization error {quantization:.3f}, topographic "
                    f"error {topographic:.3f} on {len(x)} inputs")
    figure.tight_layout()
    temporary = f"{path}.tmp.png"
    figure.savefig(temporary, dpi=90)
    plt.close(figure)
    os.replace(temporary, path)
    return path


@register_model(
    "som",
    family="som",
    task="clustering",
    inputs={"features": ((None, 64), "float32")},
    outputs={"unit": ((None,), "int32"),
             "coordinates": ((None, 2), "float32")},
    dataset="digits-flat",
    defaults={
        "rows": 10,
        "columns": 10,
        "input_dim": 64,
        "final_learning_rate": 0.01,
        "initial_radius": None,
        "final_radius": 0.5,
    },
    training={"epochs": 20, "batch_size": 8, "learning_rate": 0.5,
              "patience": 20},
    smoke={"rows": 3, "columns": 3},
    references=_REFERENCES,
    pretrained=("digits",),
    recipe="zoo.models.som:SOMRecipe",
)
def som(rows, columns, input_dim, final_learning_rate, initial_radius,
        final_radius):
    """Kohonen self-organizing map; serves each input's best-matching unit.

    The initial learning rate and the decay length come from the training
    settings (`learning_rate`, `epochs`) through the recipe.

    Args:
        rows: Grid rows.
        columns: Grid columns.
        input_dim: Length of an input vector.
        final_learning_rate: Learning rate at the end of training.
        initial_radius: Neighbourhood radius at the start, in grid units;
            `None` means `max(rows, columns) / 2`.
        final_radius: Neighbourhood radius at the end of training.
    """
    from zoo.layers.som import SelfOrganizingMap

    return SelfOrganizingMap(
        rows, columns, input_dim, final_learning_rate=final_learning_rate,
        initial_radius=initial_radius, final_radius=final_radius, name="som")
