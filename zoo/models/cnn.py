"""Convolutional image classifiers: conv blocks, max pooling, dense head."""

from zoo.registry import register_model


@register_model(
    "cnn",
    family="cnn",
    task="image-classification",
    inputs={"images": ((None, 8, 8, 1), "float32")},
    outputs={"probabilities": ((None, 10), "float32")},
    dataset="digits",
    defaults={
        "input_shape": [8, 8, 1],
        "num_classes": 10,
        "filters": [32, 64],
        "convs_per_block": 2,
        "kernel_size": 3,
        "dense_units": 128,
        "dropout": 0.25,
    },
    training={"epochs": 40, "batch_size": 32, "learning_rate": 1e-3},
    smoke={"filters": [4], "dense_units": 8, "convs_per_block": 1},
    references=(
        "LeCun, Bottou, Bengio, Haffner (1998). Gradient-based learning "
        "applied to document recognition. "
        "https://doi.org/10.1109/5.726791",
    ),
    pretrained=("digits",),
)
def cnn(input_shape, num_classes, filters, convs_per_block, kernel_size,
        dense_units, dropout):
    """CNN classifier: blocks of same-padded convolutions and max pooling.

    Each entry of `filters` adds one block of `convs_per_block` ReLU
    convolutions followed by 2x2 max pooling and dropout, so the spatial size
    halves per block. A ReLU dense layer named `embedding` and a softmax
    layer named `probabilities` follow.

    Args:
        input_shape: `(height, width, channels)` of the images.
        num_classes: Number of classes.
        filters: Channels of each block; its length is the depth.
        convs_per_block: Convolutions per block.
        kernel_size: Side of the square convolution kernels.
        dense_units: Width of the `embedding` layer.
        dropout: Dropout rate after each block and the embedding.
    """
    import keras

    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or any(
        not isinstance(d, int) or d <= 0 for d in input_shape
    ):
        raise ValueError(
            "`input_shape` must be (height, width, channels) of positive "
            f"integers. Received: {input_shape!r}"
        )
    if not filters or any(not isinstance(f, int) or f <= 0 for f in filters):
        raise ValueError(
            "`filters` must be a non-empty list of positive integers. "
            f"Received: {filters!r}"
        )
    smallest = min(input_shape[:2])
    if smallest < 2 ** len(filters):
        raise ValueError(
            f"{len(filters)} pooling blocks halve the image "
            f"{len(filters)} times, but the smallest side is {smallest}. "
            f"Use at most {max(smallest.bit_length() - 1, 0)} blocks. "
            f"Received: filters={filters!r}"
        )
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"`num_classes` must be an integer >= 2. Received: {num_classes!r}"
        )
    if convs_per_block < 1:
        raise ValueError(
            f"`convs_per_block` must be >= 1. Received: {convs_per_block!r}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: {dropout!r}")

    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for block, channels in enumerate(filters):
        for conv in range(convs_per_block):
            x = keras.layers.Conv2D(
                channels, kernel_size, padding="same", activation="relu",
                name=f"block{block}_conv{conv}",
            )(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        x = keras.layers.Dropout(dropout, name=f"block{block}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu",
                           name="embedding")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax",
                                 name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn")
