"""Sample-quality metrics for image generators, in a classifier's features.

The Fréchet Inception Distance (Heusel et al. 2017) and the Inception Score
(Salimans et al. 2016) measure generated images in the feature space of
an ImageNet Inception network. Digits are 8x8 and far from ImageNet, so
this module computes both in the space of the zoo's own digits classifier
(the `cnn` model): features are its `embedding` layer, class probabilities
its `probabilities` output. The numbers are comparable between runs that
use the same classifier, not with published FID or IS values.

The classifier is the hub's pretrained `cnn` on `digits` when the data is
the digits and the hub has it. Otherwise a `cnn` is trained on the data
set's training split (at most 40 epochs) and cached for the rest of the
process.

References:
    Heusel et al. (2017). GANs trained by a two time-scale update rule
    converge to a local Nash equilibrium. https://arxiv.org/abs/1706.08500
    Salimans et al. (2016). Improved techniques for training GANs.
    https://arxiv.org/abs/1606.03498
"""

import functools
import logging

import numpy as np

logger = logging.getLogger(__name__)

EMBEDDING_LAYER = "embedding"
DEFAULT_SAMPLE_COUNT = 1000

_CLASSIFIERS = {}


def _pretrained_classifier(bundle):
    if bundle.name != "digits":
        return None
    import zoo

    try:
        return zoo.get_model("cnn", weights="digits")
    except (ImportError, ValueError, KeyError, OSError) as error:
        logger.warning(
            "Pretrained `cnn` digits weights are not available (%s); "
            "training a classifier for the sample metrics instead.", error)
        return None


def _train_classifier(bundle, seed, epochs):
    import keras

    import zoo
    from zoo import datasets

    if not bundle.num_classes:
        raise ValueError(
            f"Data set '{bundle.name}' has no class labels, so no "
            "classifier can be trained for the sample metrics. Use a "
            "labeled image data set."
        )
    logger.info("Training a `cnn` classifier on '%s' for the sample "
                "metrics.", bundle.name)
    keras.utils.set_random_seed(seed)
    classifier = zoo.get_model("cnn", input_shape=list(bundle.input_shape),
                               num_classes=int(bundle.num_classes))
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3),
                       loss="sparse_categorical_crossentropy",
                       metrics=["accuracy"])
    # The data set reshuffles itself each epoch, so `fit` must not.
    classifier.fit(
        datasets.as_dataset(bundle.train, 32, shuffle=True, seed=seed),
        validation_data=datasets.as_dataset(bundle.validation, 256),
        epochs=epochs, verbose=0, shuffle=False,
        callbacks=[keras.callbacks.EarlyStopping(
            patience=8, restore_best_weights=True)],
    )
    return classifier


def load_classifier(bundle, seed=0, epochs=40):
    """Return the `cnn` classifier that defines the feature space.

    Args:
        bundle: The `DataBundle` whose images the metrics compare.
        seed: Seed of the fallback training. Defaults to 0.
        epochs: Maximum epochs of the fallback training, which stops early
            when the validation loss stalls. Defaults to 40.

    Returns:
        A `keras.Model` with a layer named `embedding` and class
        probabilities as output, cached per data set for the process.
    """
    key = (bundle.name, tuple(bundle.input_shape))
    if key not in _CLASSIFIERS:
        classifier = _pretrained_classifier(bundle)
        if classifier is None:
            classifier = _train_classifier(bundle, seed, epochs)
        _CLASSIFIERS[key] = classifier
    return _CLASSIFIERS[key]


class FeatureExtractor:
    """Embedding features and class probabilities of a classifier.

    Args:
        classifier: Keras classifier with a layer named `embedding`, whose
            output is the class probabilities.

    Example:

    ```python
    extractor = FeatureExtractor(zoo.get_model("cnn", weights="digits"))
    features, probabilities = extractor(images)
    ```
    """

    def __init__(self, classifier):
        import keras

        try:
            embedding = classifier.get_layer(EMBEDDING_LAYER).output
        except ValueError as error:
            raise ValueError(
                f"The classifier '{classifier.name}' has no layer named "
                f"'{EMBEDDING_LAYER}'. Use a zoo `cnn`, which names its "
                "feature layer so."
            ) from error
        import tensorflow as tf

        self.classifier = classifier
        self.input_shape = tuple(classifier.inputs[0].shape[1:])
        self.model = keras.Model(classifier.inputs[0],
                                 [embedding, classifier.outputs[0]],
                                 name=f"{classifier.name}_features")
        # One traced graph for every batch size: eager calls of a Keras
        # model cost more than the forward pass on small images.
        self.forward = tf.function(
            lambda images: self.model(images, training=False),
            input_signature=[tf.TensorSpec((None, *self.input_shape),
                                           "float32")])

    def __call__(self, images, batch_size=1024):
        """Return `(features, probabilities)` of `images` as NumPy arrays.

        Args:
            images: Array `(count, *input_shape)` in the classifier's
                input range (the data's pixel range).
            batch_size: Images per forward pass. Defaults to 1024.
        """
        images = np.asarray(images, dtype="float32")
        if tuple(images.shape[1:]) != self.input_shape:
            raise ValueError(
                f"Images of shape {images.shape[1:]} do not fit the "
                f"classifier's input {self.input_shape}. Generate images "
                "of the data set's shape."
            )
        features, probabilities = [], []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            feature, probability = self.forward(batch)
            features.append(np.asarray(feature, dtype="float64"))
            probabilities.append(np.asarray(probability, dtype="float64"))
        return np.concatenate(features), np.concatenate(probabilities)


def _moments(features):
    features = np.asarray(features, dtype="float64")
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(
            "Features must be a 2-D array with at least two rows. "
            f"Received shape: {features.shape}"
        )
    return features.mean(axis=0), np.cov(features, rowvar=False)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    # Finding the BLAS libraries scans every loaded library, so do it once.
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _psd_sqrt(matrix):
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(features_a, features_b):
    """Return the Fréchet distance between Gaussians fitted to two sets.

    d² = ||mu_a - mu_b||² + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), where the
    trace of the square root is computed as the sum of square roots of the
    eigenvalues of S_a^(1/2) S_b S_a^(1/2), a symmetric positive
    semidefinite matrix with the same eigenvalues as S_a S_b. This form
    stays real and finite when the covariances are singular, as they are
    for features with dead ReLU units.

    Args:
        features_a: Array `(count_a, dim)`.
        features_b: Array `(count_b, dim)`.

    Returns:
        The squared Fréchet distance, a float >= 0.

    References:
        Heusel et al. (2017). https://arxiv.org/abs/1706.08500
    """
    # BLAS threads competing with TensorFlow's thread pool made these
    # small products about 10 times slower than one thread does.
    with _blas_controller().limit(limits=1, user_api="blas"):
        mean_a, cov_a = _moments(features_a)
        mean_b, cov_b = _moments(features_b)
        if mean_a.shape != mean_b.shape:
            raise ValueError(
                "Both feature sets must have the same dimension. Received: "
                f"{mean_a.shape[0]} and {mean_b.shape[0]}"
            )
        root_a = _psd_sqrt(cov_a)
        middle = root_a @ cov_b @ root_a
        eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    trace_root = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    distance = (np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a)
                + np.trace(cov_b) - 2.0 * trace_root)
    return float(max(distance, 0.0))


def inception_score(probabilities, eps=1e-12):
    """Return exp(E_x KL(p(y|x) || p(y))) of class probabilities.

    It is 1 when every sample gets the same class distribution and reaches
    the number of classes when samples are confidently classified and the
    classes are used equally.

    Args:
        probabilities: Array `(count, num_classes)`, rows summing to 1.
        eps: Floor inside the logarithms. Defaults to 1e-12.

    Returns:
        The score, a float in [1, num_classes].

    References:
        Salimans et al. (2016). https://arxiv.org/abs/1606.03498
    """
    probabilities = np.asarray(probabilities, dtype="float64")
    if probabilities.ndim != 2 or len(probabilities) == 0:
        raise ValueError(
            "`probabilities` must be a non-empty 2-D array. "
            f"Received shape: {probabilities.shape}"
        )
    marginal = probabilities.mean(axis=0, keepdims=True)
    divergence = np.sum(
        probabilities * (np.log(probabilities + eps)
                         - np.log(marginal + eps)), axis=1)
    return float(np.exp(divergence.mean()))


def class_coverage(probabilities, num_classes=None):
    """Return how generated samples spread over the classifier's classes.

    Args:
        probabilities: Array `(count, num_classes)`.
        num_classes: Number of classes. Defaults to the array's width.

    Returns:
        A dict with `class_fractions` (list, fraction of samples whose top
        class is each class), `min_class_fraction` and
        `mean_top_probability`.
    """
    probabilities = np.asarray(probabilities, dtype="float64")
    num_classes = num_classes or probabilities.shape[1]
    counts = np.bincount(probabilities.argmax(axis=1),
                         minlength=num_classes)
    fractions = counts / max(len(probabilities), 1)
    return {
        "class_fractions": [float(f) for f in fractions],
        "min_class_fraction": float(fractions.min()),
        "mean_top_probability": float(probabilities.max(axis=1).mean()),
    }


def uniform_noise(count, shape, seed=0):
    """Return `count` images of uniform noise in [0, 1], a reference."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, size=(count, *shape)).astype("float32")


def evaluate_samples(samples, bundle, extractor=None, seed=0):
    """Measure generated images against a data set's test split.

    Args:
        samples: Generated images `(count, *image_shape)` in the data's
            pixel range [0, 1].
        bundle: The `DataBundle` the generator learned.
        extractor: A `FeatureExtractor`. Defaults to one on
            `load_classifier(bundle)`.
        seed: Seed of the uniform-noise reference. Defaults to 0.

    Returns:
        A dict of floats: `fd` (generated vs test), `fd_real` (training vs
        test images, the floor set by sampling), `fd_noise` (uniform noise
        vs test, a ceiling), `fd_ratio` = `fd / fd_noise`,
        `inception_score` with references `inception_score_real` (test
        images) and `inception_score_noise`, `min_class_fraction` and
        `mean_top_probability`.
    """
    samples = np.asarray(samples, dtype="float32")
    extractor = extractor or FeatureExtractor(load_classifier(bundle))
    test_features, test_probabilities = extractor(bundle.test.x)
    train_features, _ = extractor(bundle.train.x)
    noise_features, noise_probabilities = extractor(
        uniform_noise(len(samples), samples.shape[1:], seed))
    features, probabilities = extractor(samples)

    coverage = class_coverage(probabilities)
    fd = frechet_distance(features, test_features)
    fd_noise = frechet_distance(noise_features, test_features)
    return {
        "fd": fd,
        "fd_real": frechet_distance(train_features, test_features),
        "fd_noise": fd_noise,
        "fd_ratio": fd / fd_noise if fd_noise > 0 else float("inf"),
        "inception_score": inception_score(probabilities),
        "inception_score_real": inception_score(test_probabilities),
        "inception_score_noise": inception_score(noise_probabilities),
        "min_class_fraction": coverage["min_class_fraction"],
        "mean_top_probability": coverage["mean_top_probability"],
    }
