"""A Kohonen self-organizing map as a Keras model.

The map trains by its own update rule in `train_step` (no gradients), and
its forward pass returns each input's best-matching unit and that unit's
grid coordinates, which is what it serves.
"""

import keras
import numpy as np
from keras import ops


def _check_positive_int(argument, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{argument}` must be a positive integer. Received: "
            f"{argument}={value!r}"
        )


def _check_positive(argument, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not value > 0:
        raise ValueError(
            f"`{argument}` must be a positive number. Received: "
            f"{argument}={value!r}"
        )


@keras.saving.register_keras_serializable(package="zoo")
class SelfOrganizingMap(keras.Model):
    """Kohonen self-organizing map on a rectangular grid.

    Each unit `j` of a `rows x columns` grid has a codebook vector `w_j` in
    input space. An input's best-matching unit (BMU) is the unit with the
    nearest codebook vector (Euclidean). A training step on a batch moves
    every codebook vector towards the inputs, weighted by a Gaussian
    neighbourhood of grid distance around each input's BMU:

        h_bj = exp(-||r_j - r_bmu(b)||^2 / (2 sigma(t)^2))
        w_j <- w_j + eta(t) * mean_b h_bj (x_b - w_j)

    With batches of one this is Kohonen's online rule. The learning rate
    `eta` and the radius `sigma` decay exponentially from their initial to
    their final values over `decay_steps` training steps, and stay at the
    final values after that.

    Training reports the quantization error, the mean Euclidean distance
    from an input to its BMU's codebook vector, and the topographic error,
    the fraction of inputs whose two nearest units are not grid neighbours.
    Neighbours are at grid distance 1, so diagonal units do not count.
    Both errors are measured before each step's update.

    Args:
        rows: Grid rows.
        columns: Grid columns.
        input_dim: Length of an input vector.
        initial_learning_rate: `eta` at step 0. Defaults to 0.5.
        final_learning_rate: `eta` from `decay_steps` on. Defaults to 0.01.
        initial_radius: `sigma` at step 0, in grid units. Defaults to
            `max(rows, columns) / 2`.
        final_radius: `sigma` from `decay_steps` on. Defaults to 0.5.
        decay_steps: Training steps of the decay. Defaults to 1000.
        seed: Seed of the initial codebook (uniform in [0, 1)). Defaults
            to `None`.
        **kwargs: Passed to `keras.Model`.

    Call arguments:
        inputs: Vectors `(batch, input_dim)`.

    Returns:
        A list `[unit, coordinates]`: the BMU index `(batch,)` int32,
        numbered row by row, and its `(row, column)` `(batch, 2)` float32.

    Example:

    ```python
    som = SelfOrganizingMap(10, 10, 64, decay_steps=2000)
    som.compile()
    som.fit(pixels, epochs=20, batch_size=16)
    unit, coordinates = som(pixels[:5])
    ```

    References:
        Kohonen (1982). Self-organized formation of topologically correct
        feature maps. https://doi.org/10.1007/BF00337288
        Kiviluoto (1996). Topology preservation in self-organizing maps.
        https://doi.org/10.1109/ICNN.1996.548907
    """

    def __init__(self, rows, columns, input_dim, initial_learning_rate=0.5,
                 final_learning_rate=0.01, initial_radius=None,
                 final_radius=0.5, decay_steps=1000, seed=None, **kwargs):
        _check_positive_int("rows", rows)
        _check_positive_int("columns", columns)
        _check_positive_int("input_dim", input_dim)
        _check_positive("initial_learning_rate", initial_learning_rate)
        _check_positive("final_learning_rate", final_learning_rate)
        if initial_radius is None:
            initial_radius = max(rows, columns) / 2.0
        _check_positive("initial_radius", initial_radius)
        _check_positive("final_radius", final_radius)
        _check_positive_int("decay_steps", decay_steps)
        super().__init__(**kwargs)
        self.rows = rows
        self.columns = columns
        self.input_dim = input_dim
        self.initial_learning_rate = float(initial_learning_rate)
        self.final_learning_rate = float(final_learning_rate)
        self.initial_radius = float(initial_radius)
        self.final_radius = float(final_radius)
        self.decay_steps = decay_steps
        self.seed = seed

        self.num_units = rows * columns
        self.codebook = self.add_weight(
            shape=(self.num_units, input_dim), name="codebook",
            initializer=keras.initializers.RandomUniform(0.0, 1.0, seed=seed),
            trainable=False,
        )
        self.iterations_done = self.add_weight(
            shape=(), name="iterations_done", initializer="zeros",
            dtype="int64", trainable=False,
        )
        row_index, column_index = np.divmod(np.arange(self.num_units),
                                            columns)
        # (num_units, 2) grid coordinates, row-major like the unit numbers.
        self.locations = np.stack([row_index, column_index],
                                  axis=-1).astype("float32")
        self.built = True

        self.quantization_tracker = keras.metrics.Mean(
            name="quantization_error")
        self.topographic_tracker = keras.metrics.Mean(
            name="topographic_error")

    # --- distances and schedules --------------------------------------------

    def squared_distances(self, inputs):
        """Return squared distances to every codebook vector.

        Returns:
            `(batch, num_units)` float tensor.
        """
        inputs = ops.convert_to_tensor(inputs, self.compute_dtype)
        codebook = ops.convert_to_tensor(self.codebook)
        # ||x||^2 - 2 x.w + ||w||^2: (batch, 1) + (batch, units) + (units,)
        distances = (ops.sum(ops.square(inputs), axis=-1, keepdims=True)
                     - 2.0 * ops.matmul(inputs, ops.transpose(codebook))
                     + ops.sum(ops.square(codebook), axis=-1))
        return ops.maximum(distances, 0.0)

    def best_matching_unit(self, inputs):
        """Return the index of each input's best-matching unit, `(batch,)`."""
        return ops.cast(ops.argmin(self.squared_distances(inputs), axis=-1),
                        "int32")

    def schedule(self, step):
        """Return `(learning_rate, radius)` at training step `step`."""
        fraction = ops.minimum(
            ops.cast(step, "float32") / float(self.decay_steps), 1.0)
        learning_rate = self.initial_learning_rate * ops.power(
            self.final_learning_rate / self.initial_learning_rate, fraction)
        radius = self.initial_radius * ops.power(
            self.final_radius / self.initial_radius, fraction)
        return learning_rate, radius

    def _errors(self, squared_distances):
        # Two nearest units per input: (batch, 2).
        _, nearest = ops.top_k(-squared_distances, k=min(2, self.num_units))
        quantization = ops.sqrt(ops.min(squared_distances, axis=-1))
        if self.num_units < 2:
            return quantization, ops.zeros_like(quantization)
        locations = ops.convert_to_tensor(self.locations)
        first = ops.take(locations, nearest[:, 0], axis=0)
        second = ops.take(locations, nearest[:, 1], axis=0)
        grid_distance = ops.sum(ops.abs(first - second), axis=-1)
        topographic = ops.cast(grid_distance > 1.0, quantization.dtype)
        return quantization, topographic

    # --- Keras hooks ----------------------------------------------------------

    def call(self, inputs):
        unit = self.best_matching_unit(inputs)
        coordinates = ops.take(ops.convert_to_tensor(self.locations), unit,
                               axis=0)
        return [unit, coordinates]

    @property
    def metrics(self):
        return [self.quantization_tracker, self.topographic_tracker]

    def train_step(self, data):
        inputs = data[0] if isinstance(data, (tuple, list)) else data
        inputs = ops.convert_to_tensor(inputs, self.compute_dtype)
        distances = self.squared_distances(inputs)
        quantization, topographic = self._errors(distances)

        learning_rate, radius = self.schedule(self.iterations_done)
        locations = ops.convert_to_tensor(self.locations)
        winners = ops.take(locations, ops.argmin(distances, axis=-1), axis=0)
        # (batch, 1, 2) - (1, units, 2) -> (batch, units)
        grid_squared = ops.sum(
            ops.square(winners[:, None, :] - locations[None, :, :]), axis=-1)
        neighbourhood = ops.exp(-grid_squared / (2.0 * ops.square(radius)))
        batch = ops.cast(ops.shape(inputs)[0], inputs.dtype)
        codebook = ops.convert_to_tensor(self.codebook)
        # sum_b h_bj x_b - (sum_b h_bj) w_j: (units, input_dim)
        pull = (ops.matmul(ops.transpose(neighbourhood), inputs)
                - ops.sum(neighbourhood, axis=0)[:, None] * codebook)
        self.codebook.assign(codebook + learning_rate * pull / batch)
        self.iterations_done.assign_add(1)
        return self._update_metrics(quantization, topographic)

    def test_step(self, data):
        inputs = data[0] if isinstance(data, (tuple, list)) else data
        quantization, topographic = self._errors(
            self.squared_distances(inputs))
        return self._update_metrics(quantization, topographic)

    def _update_metrics(self, quantization, topographic):
        self.quantization_tracker.update_state(quantization)
        self.topographic_tracker.update_state(topographic)
        return {metric.name: metric.result() for metric in self.metrics}

    def quantization_error(self, inputs):
        """Return the mean distance from `inputs` to their BMU vectors."""
        quantization, _ = self._errors(self.squared_distances(inputs))
        return float(ops.mean(quantization))

    def topographic_error(self, inputs):
        """Return the fraction of `inputs` whose two nearest units are not
        grid neighbours."""
        _, topographic = self._errors(self.squared_distances(inputs))
        return float(ops.mean(topographic))

    def get_config(self):
        config = super().get_config()
        config.update({
            "rows": self.rows,
            "columns": self.columns,
            "input_dim": self.input_dim,
            "initial_learning_rate": self.initial_learning_rate,
            "final_learning_rate": self.final_learning_rate,
            "initial_radius": self.initial_radius,
            "final_radius": self.final_radius,
            "decay_steps": self.decay_steps,
            "seed": self.seed,
        })
        return config
