"""Deep convolutional GANs (DCGAN): builders and registry records.

The networks follow the architecture guidelines of Radford et al. (2015).
Strided convolutions in the discriminator and strided transposed
convolutions in the generator replace pooling. Batch normalization is in
both networks except at the generator output and the discriminator input.
The generator uses ReLU with a tanh output, the discriminator LeakyReLU
with slope 0.2, and all weights start from N(0, 0.02). Image size, channels and
latent size are hyperparameters, so one family serves 8x8 digits, 28x28
MNIST and 32x32 CIFAR-10.

The trained model is a `zoo.layers.gan.GAN`. Its recipe
(`training.gan.GanRecipe`) trains both networks with Adam (learning rate
2e-4, beta_1 0.5) and exports the generator for TF Serving.
"""

from zoo.registry import register_model

_REFERENCES = (
    "Radford, Metz, Chintala (2015). Unsupervised representation learning "
    "with deep convolutional generative adversarial networks. "
    "https://arxiv.org/abs/1511.06434",
    "Goodfellow et al. (2014). Generative adversarial nets. "
    "https://arxiv.org/abs/1406.2661",
)

# Radford et al. (2015) initialize every weight from N(0, 0.02).
INIT_STDDEV = 0.02
LEAKY_RELU_SLOPE = 0.2
# Batch-norm moving averages with momentum 0.9 follow the generator's
# changing statistics over a short training run; Keras' 0.99 lags behind.
BATCH_NORM_MOMENTUM = 0.9


def _check_image_shape(image_shape):
    image_shape = tuple(image_shape)
    if len(image_shape) != 3 or any(
        not isinstance(d, int) or d <= 0 for d in image_shape
    ):
        raise ValueError(
            "`image_shape` must be (height, width, channels) of positive "
            f"integers. Received: image_shape={image_shape!r}"
        )
    return image_shape


def _check_filters(argument, filters):
    if not filters or any(not isinstance(f, int) or f <= 0 for f in filters):
        raise ValueError(
            f"`{argument}` must be a non-empty list of positive integers. "
            f"Received: {argument}={filters!r}"
        )


def _check_positive(argument, value):
    if not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{argument}` must be a positive integer. "
            f"Received: {argument}={value!r}"
        )


def build_generator(latent_dim, image_shape, filters, kernel_size=4,
                    name="generator"):
    """Build a DCGAN generator from latent vectors to images in [-1, 1].

    A dense projection reshaped to a `height / 2**n` by `width / 2**n` map
    with `filters[0]` channels is followed by `n = len(filters)` strided
    transposed convolutions, each doubling the spatial size. The first
    `n - 1` go to `filters[1:]` channels with batch normalization and ReLU,
    and the last goes to the image channels with tanh.

    Args:
        latent_dim: Size of the latent vectors.
        image_shape: `(height, width, channels)` of the images; height and
            width must be divisible by `2 ** len(filters)`.
        filters: Channels of the projected map and of each hidden
            transposed convolution, widest first, such as `[128, 64]`.
        kernel_size: Side of the square kernels. Defaults to 4.
        name: Model name. Defaults to `"generator"`.

    Returns:
        A functional `keras.Model` with input `latent` and output `images`.

    Example:

    ```python
    generator = build_generator(100, (28, 28, 1), [256, 128])
    ```

    References:
        Radford et al. (2015). https://arxiv.org/abs/1511.06434
    """
    import keras

    _check_positive("latent_dim", latent_dim)
    image_shape = _check_image_shape(image_shape)
    _check_filters("filters", filters)
    _check_positive("kernel_size", kernel_size)
    height, width, channels = image_shape
    scale = 2 ** len(filters)
    if height % scale or width % scale:
        raise ValueError(
            f"{len(filters)} generator stages double the size "
            f"{len(filters)} times, so height and width must be divisible "
            f"by {scale}. Use fewer `generator_filters` or another image "
            f"size. Received: image_shape={image_shape!r}, "
            f"generator_filters={filters!r}"
        )

    def initializer():
        return keras.initializers.RandomNormal(0.0, INIT_STDDEV)

    def batch_norm(label):
        return keras.layers.BatchNormalization(
            momentum=BATCH_NORM_MOMENTUM, name=f"{label}_bn")

    latent = keras.Input(shape=(latent_dim,), name="latent")
    start_height, start_width = height // scale, width // scale

    # Projection: (batch, latent_dim) -> (batch, h / 2**n, w / 2**n, f0)
    x = keras.layers.Dense(start_height * start_width * filters[0],
                           use_bias=False, kernel_initializer=initializer(),
                           name="project")(latent)
    x = keras.layers.Reshape((start_height, start_width, filters[0]),
                             name="project_reshape")(x)
    x = batch_norm("project")(x)
    x = keras.layers.ReLU(name="project_relu")(x)

    # Upsampling: each stage doubles height and width.
    for stage, channels_out in enumerate(filters[1:]):
        x = keras.layers.Conv2DTranspose(
            channels_out, kernel_size, strides=2, padding="same",
            use_bias=False, kernel_initializer=initializer(),
            name=f"up{stage}")(x)
        x = batch_norm(f"up{stage}")(x)
        x = keras.layers.ReLU(name=f"up{stage}_relu")(x)

    # Output: (batch, height, width, channels) in [-1, 1], no batch norm.
    images = keras.layers.Conv2DTranspose(
        channels, kernel_size, strides=2, padding="same",
        activation="tanh", kernel_initializer=initializer(),
        name="images")(x)
    return keras.Model(latent, images, name=name)


def build_discriminator(image_shape, filters, kernel_size=4,
                        name="discriminator"):
    """Build a DCGAN discriminator from images to one logit per image.

    Each entry of `filters` adds a convolution with stride 2 and LeakyReLU
    (slope 0.2), with batch normalization on every block but the first,
    which reads the images. A dense layer maps the flattened last map to the
    logit of "real".

    Args:
        image_shape: `(height, width, channels)` of the images.
        filters: Channels of each strided convolution, such as `[64, 128]`.
        kernel_size: Side of the square kernels. Defaults to 4.
        name: Model name. Defaults to `"discriminator"`.

    Returns:
        A functional `keras.Model` with input `images` and output `logits`
        of shape `(batch, 1)`.

    References:
        Radford et al. (2015). https://arxiv.org/abs/1511.06434
    """
    import keras

    image_shape = _check_image_shape(image_shape)
    _check_filters("filters", filters)
    _check_positive("kernel_size", kernel_size)

    images = keras.Input(shape=image_shape, name="images")
    x = images
    # Downsampling: each block halves height and width (rounding up).
    for block, channels_out in enumerate(filters):
        x = keras.layers.Conv2D(
            channels_out, kernel_size, strides=2, padding="same",
            use_bias=block == 0,
            kernel_initializer=keras.initializers.RandomNormal(
                0.0, INIT_STDDEV),
            name=f"down{block}")(x)
        if block > 0:
            x = keras.layers.BatchNormalization(
                momentum=BATCH_NORM_MOMENTUM, name=f"down{block}_bn")(x)
        x = keras.layers.LeakyReLU(LEAKY_RELU_SLOPE,
                                   name=f"down{block}_lrelu")(x)

    # Head: (batch, h', w', c) -> (batch, 1) logits.
    x = keras.layers.Flatten(name="flatten")(x)
    logits = keras.layers.Dense(
        1, kernel_initializer=keras.initializers.RandomNormal(
            0.0, INIT_STDDEV),
        name="logits")(x)
    return keras.Model(images, logits, name=name)


@register_model(
    "dcgan",
    family="dcgan",
    task="image-generation",
    inputs={"latent": ((None, 32), "float32")},
    outputs={"images": ((None, 8, 8, 1), "float32")},
    dataset="digits",
    defaults={
        "image_shape": [8, 8, 1],
        "latent_dim": 32,
        "generator_filters": [64, 32],
        "discriminator_filters": [32, 64],
        "kernel_size": 4,
        "label_smoothing": 0.0,
        "generator_objective": "non-saturating",
    },
    # Early stopping watches the Fréchet distance of samples (see
    # `GanRecipe`); patience equal to the epochs lets every run finish.
    training={"epochs": 100, "batch_size": 32, "learning_rate": 2e-4,
              "patience": 100},
    smoke={"latent_dim": 8, "generator_filters": [8],
           "discriminator_filters": [8]},
    references=_REFERENCES,
    pretrained=("digits",),
    recipe="training.gan:GanRecipe",
)
def dcgan(image_shape, latent_dim, generator_filters, discriminator_filters,
          kernel_size, label_smoothing, generator_objective):
    """DCGAN: convolutional generator and discriminator trained as a GAN.

    Args:
        image_shape: `(height, width, channels)` of the data, such as
            `[8, 8, 1]` for the digits, `[28, 28, 1]` for MNIST or
            `[32, 32, 3]` for CIFAR-10.
        latent_dim: Size of the latent vectors z ~ N(0, I).
        generator_filters: Channels of the generator's projected map and
            hidden stages; its length is the number of doublings.
        discriminator_filters: Channels of the discriminator's strided
            convolutions.
        kernel_size: Side of the square kernels of both networks.
        label_smoothing: One-sided label smoothing of the real targets.
        generator_objective: `"non-saturating"` or `"minimax"`.

    Returns:
        An uncompiled `zoo.layers.gan.GAN`.
    """
    from zoo.layers.gan import GAN

    generator = build_generator(latent_dim, image_shape, generator_filters,
                                kernel_size)
    discriminator = build_discriminator(image_shape, discriminator_filters,
                                        kernel_size)
    return GAN(generator, discriminator, latent_dim=latent_dim,
               label_smoothing=label_smoothing,
               generator_objective=generator_objective, name="dcgan")
