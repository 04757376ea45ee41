"""Augmentation pipelines built from a short spec, run as `tf.data` maps.

A spec is a comma-separated list of `name[:value]` steps applied in order
to each training batch, for example `rotate:15,translate:0.1,noise:0.05`.

| step | data | effect |
|---|---|---|
| `rotate:DEG` | images | rotation by an angle uniform in [-DEG, DEG] |
| `translate:FRAC` | images | shift by up to FRAC of the height and width |
| `noise:STD` | any | additive Gaussian noise of standard deviation STD |
| `flip:h`, `flip:v` | images | horizontal or vertical flip, probability 1/2 |
| `dihedral` | square images | a uniformly drawn element of D_4 |
| `cutout:SIZE` | images | zero a SIZE x SIZE square (SIZE < 1: a fraction) |
| `jitter:STD` | time series | additive Gaussian noise per time step |
| `scale:STD` | time series | multiply each series by a factor ~ N(1, STD) |
| `magwarp:STD` | time series | multiply by a smooth random curve ~ N(1, STD) |
| `slice:FRAC` | time series | crop a window of 1 - FRAC of the length and |
| | | stretch it back to the full length |
| `permute` | sets | a uniformly drawn permutation of the elements |

Images are `(batch, height, width, channels)`, time series `(batch, time,
channels)` and sets `(batch, elements, features)`. Labels pass unchanged.

Every step uses graph ops only (no `tf.py_function`) and stateless random
ops. The seed of a batch is derived from the pipeline's seed and a
fingerprint of the batch's contents, so the same seed and the same data
order give the same augmented batches, in any number of parallel map
calls. Shuffled batches differ from epoch to epoch, so their draws do too.
Every step compiles under `tf.function(jit_compile=True)` through
`AugmentPipeline.apply`, which takes the seed as an argument. The seed
derivation (`tf.fingerprint`) has no XLA kernel and runs outside it.

Augmentation lives in the input pipeline, never in the model, so an
exported serving graph contains none of it.

References:
    Um et al. (2017). Data Augmentation of Wearable Sensor Data for
    Parkinson's Disease Monitoring using Convolutional Neural Networks.
    https://arxiv.org/abs/1706.00527
    Le Guennec, Malinowski, Tavenard (2016). Data Augmentation for Time
    Series Classification using Convolutional Neural Networks.
    https://shs.hal.science/halshs-01357973
    DeVries, Taylor (2017). Improved Regularization of Convolutional Neural
    Networks with Cutout. https://arxiv.org/abs/1708.04552
"""

import difflib
import logging
import math

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_SPEC = "rotate:10,translate:0.1,noise:0.02"
# Philox, as TensorFlow numbers its random algorithms (RNG_ALG_PHILOX).
PHILOX = 1


# --- random draws -----------------------------------------------------------

def _random_bits(seed, shape):
    """Draw uniform 32-bit integers with the Philox key `seed` `(2,)` int32.

    The raw op takes the key as it is. `tf.random.stateless_uniform`
    scrambles the seed into a key first, which costs more per batch than
    the draw itself on small batches.
    """
    import tensorflow as tf

    key = tf.reshape(tf.bitcast(seed, tf.uint64), [1])
    return tf.raw_ops.StatelessRandomUniformFullIntV2(
        shape=tf.cast(shape, tf.int32), key=key,
        counter=tf.zeros([2], tf.uint64), alg=PHILOX, dtype=tf.uint32)


def _unit_uniform(seed, shape):
    """Draw floats in (0, 1) from integer draws.

    Integer stateless draws agree between XLA and plain TensorFlow, but
    float draws do not (TensorFlow 2.21 on CPU), so floats are made here
    from the top 24 bits of 32-bit draws.
    """
    import tensorflow as tf

    bits = _random_bits(seed, shape)
    top = tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32)
    return (top + 0.5) * (1.0 / 2 ** 24)


def _uniform(seed, shape, low=0.0, high=1.0):
    return low + (high - low) * _unit_uniform(seed, shape)


def _normal(seed, shape, stddev=1.0, mean=0.0):
    import tensorflow as tf

    # Box-Muller transform of two independent uniform draws.
    pair = _unit_uniform(seed, tf.concat([[2], tf.cast(shape, tf.int32)],
                                         axis=0))
    radius = tf.sqrt(-2.0 * tf.math.log(pair[0]))
    return mean + stddev * radius * tf.cos(2.0 * math.pi * pair[1])


def _batch_size(x):
    import tensorflow as tf

    return tf.shape(x)[0]


def _require_rank(name, x, rank, layout):
    if x.shape.rank != rank:
        raise ValueError(
            f"Augmentation step {name!r} works on {layout} batches of rank "
            f"{rank}. Received: shape={tuple(x.shape)}. Use it on the data "
            "kind it is made for (see `training.augment` for the table)."
        )


# --- image geometry ---------------------------------------------------------

def _warp(images, inverse_matrices):
    """Resample images at affinely mapped coordinates, bilinear, zero fill.

    `inverse_matrices` is `(batch, 3, 3)` mapping an output pixel's
    centered `(row, col, 1)` to the input position it reads. One gather
    reads the four neighbours of every pixel, which keeps the op count low
    and compiles under XLA, unlike `ImageProjectiveTransformV3`.
    """
    import numpy as np
    import tensorflow as tf

    height, width = images.shape[1], images.shape[2]
    rows, cols = np.meshgrid(np.arange(height), np.arange(width),
                             indexing="ij")
    center = np.array([(height - 1) / 2.0, (width - 1) / 2.0], "float32")
    # [3, H * W] homogeneous centered coordinates of the output pixels.
    points = np.stack([rows.ravel() - center[0], cols.ravel() - center[1],
                       np.ones(height * width)]).astype("float32")
    # [B, 3, 3] x [3, H * W] -> [B, 2, H * W] input coordinates.
    source = tf.linalg.matmul(inverse_matrices[:, :2], points) + \
        center[:, None]
    corner = tf.floor(source)
    fraction = source - corner
    # [B, 2, H * W] -> [B, 2, 4, H * W] for the corners (0,0), (0,1),
    # (1,0), (1,1).
    offsets = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], "float32")
    neighbours = corner[:, :, None, :] + offsets[None, :, :, None]
    inside = tf.reduce_all(
        (neighbours >= 0) & (neighbours <= np.array(
            [height - 1, width - 1], "float32")[None, :, None, None]),
        axis=1)
    index = tf.cast(neighbours[:, 0] * width + neighbours[:, 1], tf.int32)
    index = tf.where(inside, index, 0)
    row_weight = tf.stack([1 - fraction[:, 0], fraction[:, 0]], axis=1)
    col_weight = tf.stack([1 - fraction[:, 1], fraction[:, 1]], axis=1)
    # [B, 2, 1, HW] * [B, 1, 2, HW] -> [B, 4, HW], zero outside the image.
    weights = tf.reshape(row_weight[:, :, None] * col_weight[:, None],
                         [-1, 4, height * width])
    weights *= tf.cast(inside, weights.dtype)
    # [B, H, W, C] -> [B, H * W, C] -> [B, 4, H * W, C]
    flat = tf.reshape(images, [tf.shape(images)[0], height * width, -1])
    values = tf.gather(flat, index, batch_dims=1)
    warped = tf.reduce_sum(values * weights[..., None], axis=1)
    # [B, H * W, C] -> [B, H, W, C]
    return tf.reshape(warped, tf.shape(images))


def _rotation(x, seed, degrees):
    """Return inverse maps `(batch, 3, 3)` of random rotations."""
    import tensorflow as tf

    _require_rank("rotate", x, 4, "image")
    angle = _uniform(seed, [_batch_size(x)], -degrees, degrees) * (
        math.pi / 180.0)
    cos, sin = tf.cos(angle), tf.sin(angle)
    zeros, ones = tf.zeros_like(angle), tf.ones_like(angle)
    # The output pixel reads from the input rotated back.
    return tf.stack([tf.stack([cos, -sin, zeros], axis=1),
                     tf.stack([sin, cos, zeros], axis=1),
                     tf.stack([zeros, zeros, ones], axis=1)], axis=1)


def _translation(x, seed, fraction):
    """Return inverse maps `(batch, 3, 3)` of random shifts."""
    import tensorflow as tf

    _require_rank("translate", x, 4, "image")
    limits = tf.constant([x.shape[1] * fraction, x.shape[2] * fraction])
    shifts = _uniform(seed, [_batch_size(x), 2], -1.0, 1.0) * limits
    zeros, ones = tf.zeros_like(shifts[:, 0]), tf.ones_like(shifts[:, 0])
    return tf.stack([tf.stack([ones, zeros, -shifts[:, 0]], axis=1),
                     tf.stack([zeros, ones, -shifts[:, 1]], axis=1),
                     tf.stack([zeros, zeros, ones], axis=1)], axis=1)


def _rotate(x, seed, degrees):
    return _warp(x, _rotation(x, seed, degrees))


def _translate(x, seed, fraction):
    return _warp(x, _translation(x, seed, fraction))


def _flip(x, seed, direction):
    import tensorflow as tf

    _require_rank("flip", x, 4, "image")
    axis = 2 if direction == "h" else 1
    chosen = _uniform(seed, [_batch_size(x), 1, 1, 1]) < 0.5
    return tf.where(chosen, tf.reverse(x, [axis]), x)


def _dihedral(x, seed):
    import tensorflow as tf

    from training import groups

    _require_rank("dihedral", x, 4, "image")
    if x.shape[1] != x.shape[2]:
        raise ValueError(
            "Augmentation step 'dihedral' needs square images. Received: "
            f"shape={tuple(x.shape)}"
        )
    # [8, B, H, W, C]: every D_4 image of every example.
    variants = groups.orbit(groups.dihedral(4), x, action="image")
    choice = tf.cast(_random_bits(seed, [_batch_size(x)]) % 8, tf.int32)
    # [B, 8, H, W, C] -> [B, H, W, C]
    variants = tf.transpose(variants, [1, 0, 2, 3, 4])
    return tf.gather(variants, choice, batch_dims=1)


def _cutout(x, seed, size):
    import tensorflow as tf

    _require_rank("cutout", x, 4, "image")
    height, width = x.shape[1], x.shape[2]
    side_rows = size * height if size < 1 else size
    side_cols = size * width if size < 1 else size
    centers = _uniform(seed, [_batch_size(x), 2]) * tf.constant(
        [float(height), float(width)])
    rows = tf.range(height, dtype=tf.float32)[None, :, None] + 0.5
    cols = tf.range(width, dtype=tf.float32)[None, None, :] + 0.5
    inside_rows = tf.abs(rows - centers[:, 0, None, None]) < side_rows / 2
    inside_cols = tf.abs(cols - centers[:, 1, None, None]) < side_cols / 2
    # [B, H, W] -> [B, H, W, 1] mask of kept pixels.
    keep = tf.cast(~(inside_rows & inside_cols), x.dtype)[..., None]
    return x * keep


# --- time series ------------------------------------------------------------

def _interpolate(values, positions):
    """Linearly interpolate `values (B, K, C)` at `positions (B, T)`."""
    import tensorflow as tf

    last = values.shape[1] - 1
    positions = tf.clip_by_value(positions, 0.0, float(last))
    low = tf.floor(positions)
    frac = (positions - low)[..., None]
    low_index = tf.cast(low, tf.int32)
    high_index = tf.minimum(low_index + 1, last)
    # [B, T, C]
    return (tf.gather(values, low_index, batch_dims=1) * (1 - frac)
            + tf.gather(values, high_index, batch_dims=1) * frac)


def _scale(x, seed, stddev):
    _require_rank("scale", x, 3, "time-series")
    factors = _normal(seed, [_batch_size(x), 1, x.shape[2]], stddev, 1.0)
    return x * factors


def _magwarp(x, seed, stddev, knots=4):
    import tensorflow as tf

    _require_rank("magwarp", x, 3, "time-series")
    steps = x.shape[1]
    # [B, knots + 2, C] curve values at evenly spaced knots.
    curve = _normal(seed, [_batch_size(x), knots + 2, x.shape[2]], stddev,
                    1.0)
    positions = tf.linspace(0.0, float(knots + 1), steps)
    positions = tf.tile(positions[None], [_batch_size(x), 1])
    return x * _interpolate(curve, positions)


def _slice(x, seed, fraction):
    import tensorflow as tf

    _require_rank("slice", x, 3, "time-series")
    steps = x.shape[1]
    length = (1.0 - fraction) * (steps - 1)
    starts = _uniform(seed, [_batch_size(x), 1], 0.0, fraction * (steps - 1))
    # [B, T] positions inside the window, stretched over the full length.
    positions = starts + tf.linspace(0.0, length, steps)[None]
    return _interpolate(x, positions)


# --- sets -------------------------------------------------------------------

def _permute(x, seed):
    import tensorflow as tf

    _require_rank("permute", x, 3, "set")
    keys = _uniform(seed, [_batch_size(x), x.shape[1]])
    order = tf.argsort(keys, axis=1)
    return tf.gather(x, order, batch_dims=1)


def _noise(x, seed, stddev):
    import tensorflow as tf

    return x + _normal(seed, tf.shape(x), stddev)


# --- spec parsing -----------------------------------------------------------

def _positive(name, text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = None
    if value is None or not value > 0 or not math.isfinite(value):
        raise ValueError(
            f"Augmentation step {name!r} needs a positive number, such as "
            f"{name}:{EXAMPLES[name]}. Received: {name}:{text}"
        )
    return value


def _fraction(name, text):
    value = _positive(name, text)
    if value >= 1:
        raise ValueError(
            f"Augmentation step {name!r} needs a fraction in (0, 1), such as "
            f"{name}:{EXAMPLES[name]}. Received: {name}:{text}"
        )
    return value


def _flip_direction(name, text):
    if text not in ("h", "v"):
        raise ValueError(
            "Augmentation step 'flip' needs a direction: flip:h "
            f"(left-right) or flip:v (up-down). Received: flip:{text}"
        )
    return text


def _no_value(name, text):
    if text is not None:
        raise ValueError(
            f"Augmentation step {name!r} takes no value. Received: "
            f"{name}:{text}"
        )
    return None


# name -> (function, parser of the value)
STEPS = {
    "rotate": (_rotate, _positive),
    "translate": (_translate, _fraction),
    "noise": (_noise, _positive),
    "flip": (_flip, _flip_direction),
    "dihedral": (_dihedral, _no_value),
    "cutout": (_cutout, _positive),
    "jitter": (_noise, _positive),
    "scale": (_scale, _positive),
    "magwarp": (_magwarp, _positive),
    "slice": (_slice, _fraction),
    "permute": (_permute, _no_value),
}

# Steps that are affine maps of the pixel grid, fused by `apply`.
AFFINE_STEPS = {"rotate": _rotation, "translate": _translation}

EXAMPLES = {
    "rotate": "15", "translate": "0.1", "noise": "0.05", "flip": "h",
    "dihedral": "", "cutout": "3", "jitter": "0.03", "scale": "0.1",
    "magwarp": "0.2", "slice": "0.1", "permute": "",
}


def parse_spec(spec):
    """Parse `"rotate:15,noise:0.05"` into `[("rotate", 15.0), ...]`.

    Raises:
        ValueError: an unknown step or an invalid value; the message names
            it and lists the valid steps.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            "An augmentation spec is a comma-separated list of steps, such "
            f"as {DEFAULT_IMAGE_SPEC!r}. Received: {spec!r}"
        )
    steps = []
    for part in spec.split(","):
        name, separator, text = part.strip().partition(":")
        name = name.strip().lower()
        if name not in STEPS:
            close = difflib.get_close_matches(name, list(STEPS), n=2)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise ValueError(
                f"Unknown augmentation step {name!r} in {spec!r}.{hint} "
                f"Valid steps: {', '.join(STEPS)}"
            )
        parser = STEPS[name][1]
        value = parser(name, text.strip() if separator else None)
        steps.append((name, value))
    return steps


class AugmentPipeline:
    """A batch map `(x, y) -> (x, y)` applying spec steps in order.

    Args:
        spec: Spec string, such as `"rotate:15,translate:0.1"`.
        seed: Integer seed. Defaults to 0.

    Example:

    ```python
    pipeline = AugmentPipeline("dihedral,noise:0.05", seed=1)
    train = train.map(pipeline, num_parallel_calls=tf.data.AUTOTUNE)
    ```
    """

    def __init__(self, spec, seed=0):
        if not isinstance(seed, int):
            raise ValueError(f"`seed` must be an integer. Received: {seed!r}")
        self.spec = spec
        self.seed = seed
        self.steps = parse_spec(spec)

    def batch_seed(self, x):
        """Return the stateless seed `(2,)` int32 of batch `x`."""
        import tensorflow as tf

        # [1, 8] uint8 fingerprint of the whole batch -> [2] int32.
        flat = tf.reshape(tf.io.serialize_tensor(x), [1])
        fingerprint = tf.fingerprint(flat)
        words = tf.bitcast(tf.reshape(fingerprint, [2, 4]), tf.int32)
        return tf.bitwise.bitwise_xor(
            words, tf.constant([self.seed, 0x5EED], tf.int32))

    def apply(self, x, y, seed):
        """Apply the steps to batch `(x, y)` with stateless seed `seed`.

        Step `i` draws with the seed `seed + (0, i)`: Philox streams of
        different keys are independent. Consecutive `rotate` and
        `translate` steps are composed into one affine map and resampled
        once, which is faster and blurs less than two resamplings.
        """
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        seed = tf.cast(seed, tf.int32)
        pending = None
        for index, (name, value) in enumerate(self.steps):
            step_seed = seed + tf.constant([0, index], tf.int32)
            if name in AFFINE_STEPS:
                inverse_map = AFFINE_STEPS[name](x, step_seed, value)
                # Inverse maps compose in reverse order: the earlier
                # step's inverse is applied last.
                pending = inverse_map if pending is None else \
                    tf.linalg.matmul(pending, inverse_map)
                continue
            if pending is not None:
                x, pending = _warp(x, pending), None
            function = STEPS[name][0]
            if value is None:
                x = function(x, step_seed)
            else:
                x = function(x, step_seed, value)
        if pending is not None:
            x = _warp(x, pending)
        return x, y

    def __call__(self, x, y):
        return self.apply(x, y, self.batch_seed(x))

    def __repr__(self):
        return f"AugmentPipeline({self.spec!r}, seed={self.seed})"


def build_pipeline(spec, seed=0):
    """Return the batch map `(x, y) -> (x, y)` of an augmentation spec.

    Args:
        spec: Comma-separated steps, such as
            `"rotate:15,translate:0.1,noise:0.05"` (see the module table).
        seed: Integer seed; the same seed gives the same batches. Defaults
            to 0.

    Returns:
        An `AugmentPipeline`, to pass to `tf.data.Dataset.map` on batches.
    """
    return AugmentPipeline(spec, seed=seed)


def preview(x, spec, seed=0, variants=3):
    """Return `x` and `variants` augmented copies, `(variants + 1, *x.shape)`.

    Copy `i` uses seed `seed + i`. Labels are not needed, so zeros stand in
    for them.
    """
    import numpy as np

    x = np.asarray(x, dtype="float32")
    labels = np.zeros(len(x), dtype="int32")
    copies = [x]
    for index in range(variants):
        pipeline = build_pipeline(spec, seed=seed + index)
        copies.append(np.asarray(pipeline(x, labels)[0]))
    return np.stack(copies)


def save_preview(x, spec, path, seed=0, variants=3):
    """Write a PNG showing examples and their augmented copies.

    Images `(count, height, width, channels)` go in a grid whose first row
    holds the originals and each further row one augmented copy. Time
    series and sets `(count, steps, channels)` get one panel per example
    with the original (black) and the copies over the step axis, first
    channel only.

    Args:
        x: Examples to augment.
        spec: Augmentation spec.
        path: PNG file to write (through a temporary file and a rename).
        seed: Seed of the first copy. Defaults to 0.
        variants: Augmented copies per example. Defaults to 3.

    Returns:
        `path`.
    """
    import os

    from training.callbacks import save_image_grid

    copies = preview(x, spec, seed=seed, variants=variants)
    count = copies.shape[1]
    if copies.ndim == 5:
        flat = copies.reshape((-1,) + copies.shape[2:])
        # The originals' range, so noise shows as noise, not as a dimmer
        # picture.
        low, high = float(copies[0].min()), float(copies[0].max())
        return save_image_grid(flat, path, columns=count,
                               value_range=(low, max(high, low + 1e-6)))
    if copies.ndim != 4:
        raise ValueError(
            "A preview needs images (count, height, width, channels) or "
            "series (count, steps, channels). Received: shape="
            f"{tuple(copies.shape[1:])}"
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, count, squeeze=False,
                                figsize=(2.4 * count, 2.0))
    for column, axis in enumerate(axes[0]):
        for index in range(variants, -1, -1):
            style = {"color": "black", "linewidth": 1.5} if index == 0 \
                else {"linewidth": 0.8, "alpha": 0.8}
            axis.plot(copies[index, column, :, 0], **style)
        axis.set_xticks([])
    figure.suptitle(spec, fontsize=8)
    figure.tight_layout()
    temporary = f"{path}.tmp.png"
    figure.savefig(temporary, dpi=80)
    plt.close(figure)
    os.replace(temporary, path)
    return path
