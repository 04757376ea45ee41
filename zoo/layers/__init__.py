"""Reusable Keras layers of the zoo, registered as serializable.

Importing this package imports Keras.
"""

from zoo.layers.bayesian import BayesianMLP  # noqa: F401
from zoo.layers.bayesian import DenseVariational  # noqa: F401
from zoo.layers.bayesian import MCDropout  # noqa: F401
from zoo.layers.gan import GAN  # noqa: F401
from zoo.layers.hopfield import Hopfield  # noqa: F401
from zoo.layers.hopfield import HopfieldLayer  # noqa: F401
from zoo.layers.hopfield import HopfieldPooling  # noqa: F401
from zoo.layers.masking import ApplyPaddingMask  # noqa: F401
from zoo.layers.masking import LastStepPooling  # noqa: F401
from zoo.layers.positional import LearnedPositionalEmbedding  # noqa: F401
from zoo.layers.positional import SinusoidalPositionalEmbedding  # noqa: F401
from zoo.layers.rbm import RestrictedBoltzmannMachine  # noqa: F401
from zoo.layers.sets import JanossyPermutationModel  # noqa: F401
from zoo.layers.sets import KaryJanossyPooling  # noqa: F401
from zoo.layers.sets import SetSumPooling  # noqa: F401
from zoo.layers.som import SelfOrganizingMap  # noqa: F401
from zoo.layers.transformer import TransformerBlock  # noqa: F401
