"""Training recipe for GANs: two optimizers, sample monitoring, metrics.

`GanRecipe` is what `zoo train dcgan` runs. It scales the images from the
data's pixel range [0, 1] to the generator's tanh range [-1, 1], trains the
`zoo.layers.gan.GAN` with one Adam optimizer per network (learning rate
2e-4 and beta_1 0.5, as Radford et al. 2015 use), and selects the best
epoch by the Fréchet distance of generated samples to the validation
images, measured in the digits classifier's feature space
(`zoo.gan_eval`). During training it writes sample grids; at the end it
writes latent interpolation strips, linear and spherical, into the run
folder. It exports the generator with its output mapped back to [0, 1].

References:
    Radford et al. (2015). Unsupervised representation learning with deep
    convolutional generative adversarial networks.
    https://arxiv.org/abs/1511.06434
    White (2016). Sampling generative networks (spherical interpolation of
    latent vectors). https://arxiv.org/abs/1609.04468
"""

import logging
import os

import keras
import numpy as np

from training.callbacks import ImageGrid
from training.callbacks import save_image_grid
from training.recipes import Recipe

logger = logging.getLogger(__name__)

ADAM_BETA_1 = 0.5
MONITOR_SAMPLE_COUNT = 500
SAMPLE_GRID_SIZE = 64
INTERPOLATION_PAIRS = 8
INTERPOLATION_STEPS = 10


# --- latent interpolation ---------------------------------------------------

def _check_endpoints(start, end, steps):
    start = np.asarray(start, dtype="float64")
    end = np.asarray(end, dtype="float64")
    if start.ndim != 1 or start.shape != end.shape:
        raise ValueError(
            "`start` and `end` must be 1-D latent vectors of the same size. "
            f"Received shapes: {start.shape} and {end.shape}"
        )
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(
            f"`steps` must be an integer >= 2. Received: steps={steps!r}"
        )
    return start, end, np.linspace(0.0, 1.0, steps)[:, None]


def lerp(start, end, steps):
    """Return `steps` points on the segment from `start` to `end`.

    Args:
        start: Latent vector `(latent_dim,)`.
        end: Latent vector of the same size.
        steps: Number of points, endpoints included (>= 2).

    Returns:
        Array `(steps, latent_dim)` of float32.
    """
    start, end, t = _check_endpoints(start, end, steps)
    return ((1.0 - t) * start + t * end).astype("float32")


def slerp(start, end, steps):
    """Return `steps` points on the great-circle arc from `start` to `end`.

    The direction moves at constant angular speed along the arc between
    the two unit directions (Shoemake's slerp); the norm moves linearly
    from `|start|` to `|end|`. For endpoints of equal norm this is the
    spherical interpolation that White (2016) recommends for Gaussian
    latent spaces. Unlike the straight segment, it does not pass through
    the low-norm region near the origin, where a Gaussian prior has almost
    no samples. Antipodal endpoints have no unique arc, so one is chosen
    through the direction of the smallest component of `start`.

    Args:
        start: Latent vector `(latent_dim,)`, not zero.
        end: Latent vector of the same size, not zero.
        steps: Number of points, endpoints included (>= 2).

    Returns:
        Array `(steps, latent_dim)` of float32.

    References:
        White (2016). Sampling generative networks.
        https://arxiv.org/abs/1609.04468
    """
    start, end, t = _check_endpoints(start, end, steps)
    start_norm, end_norm = np.linalg.norm(start), np.linalg.norm(end)
    if start_norm == 0.0 or end_norm == 0.0:
        raise ValueError(
            "`slerp` needs non-zero endpoints: a zero vector has no "
            f"direction. Received norms: {start_norm} and {end_norm}"
        )
    u, v = start / start_norm, end / end_norm
    cosine = float(np.clip(u @ v, -1.0, 1.0))
    angle = np.arccos(cosine)
    if angle < 1e-6:
        directions = np.repeat(u[None], len(t), axis=0)
    else:
        if np.pi - angle < 1e-6:
            # Antipodal: go through an axis orthogonal to `u`.
            axis = np.zeros_like(u)
            axis[np.argmin(np.abs(u))] = 1.0
            axis -= (axis @ u) * u
            v_orthogonal = axis / np.linalg.norm(axis)
        else:
            v_orthogonal = (v - cosine * u) / np.sin(angle)
        directions = (np.cos(t * angle) * u
                      + np.sin(t * angle) * v_orthogonal)
    norms = (1.0 - t) * start_norm + t * end_norm
    return (directions * norms).astype("float32")


def interpolation_latents(latent_dim, pairs, steps, method="slerp", seed=0):
    """Return latent rows for `pairs` interpolation strips of `steps` each.

    Args:
        latent_dim: Size of the latent vectors.
        pairs: Number of random endpoint pairs drawn from N(0, I).
        steps: Points per strip.
        method: `"slerp"` or `"linear"`. Defaults to `"slerp"`.
        seed: Seed of the endpoints. Defaults to 0.

    Returns:
        Array `(pairs * steps, latent_dim)`, strip after strip.
    """
    methods = {"slerp": slerp, "linear": lerp}
    if method not in methods:
        raise ValueError(
            f"`method` must be one of {sorted(methods)}. "
            f"Received: method={method!r}"
        )
    rng = np.random.default_rng(seed)
    endpoints = rng.standard_normal((pairs, 2, latent_dim))
    return np.concatenate([methods[method](a, b, steps)
                           for a, b in endpoints])


# --- images -------------------------------------------------------------

def to_pixels(images):
    """Map generator outputs from [-1, 1] to the data's pixel range [0, 1]."""
    return (np.asarray(images, dtype="float32") + 1.0) / 2.0


def write_interpolations(gan, folder, pairs=INTERPOLATION_PAIRS,
                         steps=INTERPOLATION_STEPS, seed=0):
    """Write linear and slerp interpolation strips of `gan` as PNG files.

    Both files use the same endpoint pairs, one strip per row.

    Args:
        gan: A `zoo.layers.gan.GAN`.
        folder: Folder of the PNG files.
        pairs: Strips per file. Defaults to 8.
        steps: Images per strip. Defaults to 10.
        seed: Seed of the endpoints. Defaults to 0.

    Returns:
        `{"linear": path, "slerp": path}`.
    """
    paths = {}
    for method in ("linear", "slerp"):
        latent = interpolation_latents(gan.latent_dim, pairs, steps, method,
                                       seed)
        images = to_pixels(gan.generator(latent, training=False))
        paths[method] = save_image_grid(
            images, os.path.join(folder, f"interpolation_{method}.png"),
            columns=steps)
    return paths


# --- callbacks ------------------------------------------------------------

class FrechetMonitor(keras.callbacks.Callback):
    """Add the Fréchet distance of generated samples to the epoch logs.

    Each epoch the generator maps a fixed latent batch to images. The
    distance of their classifier features to the reference images'
    features is logged as `name`, so early stopping and the best-model
    checkpoint can select the epoch with the most realistic samples. Put
    it before the callbacks that read the value.

    Args:
        extractor: A `zoo.gan_eval.FeatureExtractor`.
        reference_images: Images in [0, 1] to compare with, such as the
            validation split.
        count: Generated samples per measurement. Defaults to 500.
        name: Log key. Defaults to `"val_fd"`.
        seed: Seed of the fixed latent batch. Defaults to 0.
    """

    def __init__(self, extractor, reference_images,
                 count=MONITOR_SAMPLE_COUNT, name="val_fd", seed=0):
        super().__init__()
        self.extractor = extractor
        self.reference_features, _ = extractor(reference_images)
        self.count = count
        self.name = name
        self.seed = seed
        self._latent = None
        self._features = None

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        rng = np.random.default_rng(self.seed)
        self._latent = tf.constant(rng.standard_normal(
            (self.count, self.model.latent_dim)).astype("float32"))
        generator, forward = self.model.generator, self.extractor.forward

        # Generator and classifier in one traced graph: this runs every
        # epoch, and eager Keras calls would cost more than training.
        @tf.function
        def features(latent):
            images = (generator(latent, training=False) + 1.0) / 2.0
            return forward(images)[0]

        self._features = features

    def on_epoch_end(self, epoch, logs=None):
        from zoo.gan_eval import frechet_distance

        features = self._features(self._latent).numpy()
        if logs is not None:
            logs[self.name] = frechet_distance(features,
                                               self.reference_features)


# --- recipe ---------------------------------------------------------------

class GanRecipe(Recipe):
    """Train a `zoo.layers.gan.GAN` on images with values in [0, 1].

    Settings used beyond the common ones: `learning_rate` (both Adam
    optimizers, beta_1 0.5), `sample_every` (epochs between sample grids,
    default 25) and `sample_count` (generated samples for the test
    metrics, default 1000).

    The monitored metric is `val_fd`, the Fréchet distance of 500 samples
    to the validation images (see `FrechetMonitor`). GAN losses do not
    measure sample quality, so neither early stopping nor the best-model
    checkpoint looks at them.
    """

    monitor = "val_fd"
    monitor_mode = "min"

    def __init__(self, spec, settings):
        super().__init__(spec, settings)
        self._bundle = None
        self._latent_dim = spec.defaults.get("latent_dim")

    def input_model(self, model):
        """Return the discriminator, the network the data feeds."""
        return model.discriminator

    def compile(self, model):
        learning_rate = self.settings["learning_rate"]
        model.compile(
            discriminator_optimizer=keras.optimizers.Adam(
                learning_rate, beta_1=ADAM_BETA_1),
            generator_optimizer=keras.optimizers.Adam(
                learning_rate, beta_1=ADAM_BETA_1),
        )
        self._latent_dim = model.latent_dim

    def datasets(self, bundle, augment=None):
        """Return `(train, validation, test)` with images in [-1, 1].

        Training batches are full (the last partial batch is dropped), so
        every step trains on `batch_size` real and `batch_size` generated
        images.
        """
        import tensorflow as tf

        from zoo import datasets

        low, high = float(bundle.train.x.min()), float(bundle.train.x.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"GAN training expects pixel values in [0, 1], but data set "
                f"'{bundle.name}' spans [{low:.3g}, {high:.3g}]. Rescale "
                "the images to [0, 1] first."
            )
        self._bundle = bundle
        batch_size = self.settings["batch_size"]
        if batch_size > len(bundle.train):
            raise ValueError(
                f"`batch_size` {batch_size} exceeds the {len(bundle.train)} "
                f"training images of '{bundle.name}', so no full batch "
                "exists. Use a smaller `--batch-size`."
            )

        def scale(x, y):
            return x * 2.0 - 1.0, y

        def prepare(dataset):
            return dataset.map(scale, num_parallel_calls=tf.data.AUTOTUNE)

        train = datasets.as_dataset(
            bundle.train, batch_size, shuffle=True,
            seed=self.settings["seed"], augment=augment, drop_remainder=True)
        validation = datasets.as_dataset(bundle.validation, batch_size)
        test = datasets.as_dataset(bundle.test, batch_size)
        return prepare(train), prepare(validation), prepare(test)

    def _extractor(self):
        from zoo import gan_eval

        if self._bundle is None:
            raise ValueError(
                "GanRecipe.datasets(bundle) must run before fit or "
                "evaluate, because the sample metrics compare with that "
                "data set."
            )
        return gan_eval.FeatureExtractor(
            gan_eval.load_classifier(self._bundle, self.settings["seed"]))

    def fit(self, model, train, validation, callbacks, initial_epoch=0):
        monitor = FrechetMonitor(self._extractor(), self._bundle.validation.x,
                                 name=self.monitor,
                                 seed=self.settings["seed"])
        extra = []
        run_dir = getattr(self, "run_dir", None)
        if run_dir:
            extra.append(self.sample_grid(
                model, os.path.join(run_dir, "samples")))
        history = super().fit(model, train, validation,
                              [monitor] + list(callbacks) + extra,
                              initial_epoch=initial_epoch)
        if run_dir:
            write_interpolations(model, run_dir, seed=self.settings["seed"])
        return history

    def sample_grid(self, model, folder):
        """Return an `ImageGrid` of 64 samples from one fixed latent batch.

        Following the same latent vectors from grid to grid shows how the
        generator changes. A grid is written every `sample_every` epochs
        (default 25) and at the last epoch, as `folder/epoch-NNNN.png`.
        """
        rng = np.random.default_rng(self.settings["seed"])
        latent = rng.standard_normal(
            (SAMPLE_GRID_SIZE, model.latent_dim)).astype("float32")
        return ImageGrid(
            os.path.join(folder, "epoch-{epoch:04d}.png"),
            lambda gan: gan.generator(latent, training=False),
            every_n_epochs=int(self.settings.get("sample_every", 25)),
            value_range=(-1.0, 1.0))

    def generate_pixels(self, model, count, seed=0):
        """Return `count` generated images in [0, 1] from seeded latents."""
        rng = np.random.default_rng(seed)
        latent = rng.standard_normal((count, model.latent_dim))
        return to_pixels(model.generator(latent.astype("float32"),
                                         training=False))

    def evaluate(self, model, test, bundle):
        """Return the test losses and the sample metrics with references.

        See `zoo.gan_eval.evaluate_samples` for the sample metrics; they
        use `sample_count` generated images (1000 by default).
        """
        from zoo import gan_eval

        self._bundle = bundle
        results = model.evaluate(test, verbose=0, return_dict=True)
        metrics = {f"test_{k}": float(v) for k, v in results.items()}
        count = int(self.settings.get("sample_count",
                                      gan_eval.DEFAULT_SAMPLE_COUNT))
        samples = self.generate_pixels(model, count, self.settings["seed"])
        metrics.update(gan_eval.evaluate_samples(
            samples, bundle, self._extractor(), seed=self.settings["seed"]))
        return metrics

    def serving_model(self, model):
        """Return the generator with outputs mapped to [0, 1], as `images`.

        The mapping (x + 1) / 2 is a `Rescaling` layer inside the model,
        so the exported graph serves images in the data's pixel range.
        """
        self._latent_dim = model.latent_dim
        latent = keras.Input(shape=(model.latent_dim,), name="latent")
        # (batch, latent_dim) -> (batch, height, width, channels) in [-1, 1]
        images = model.generator(latent)
        images = keras.layers.Rescaling(0.5, offset=0.5,
                                        name="images")(images)
        return keras.Model(latent, images, name=f"{model.name}_generator")

    def sample_inputs(self, bundle, count=8):
        """Return `{"latent": (count, latent_dim)}` draws from N(0, I)."""
        rng = np.random.default_rng(self.settings.get("seed", 0))
        latent = rng.standard_normal((count, self._latent_dim))
        return {next(iter(self.spec.inputs)): latent.astype("float32")}
