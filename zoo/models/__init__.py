"""Model families. Importing this package registers every family's models.

Each family module declares its registry records at import time and imports
Keras only inside its builders, so this import stays free of TensorFlow.
"""

from zoo.models import bayesian  # noqa: F401
from zoo.models import cnn  # noqa: F401
from zoo.models import dcgan  # noqa: F401
from zoo.models import dense  # noqa: F401
from zoo.models import hopfield  # noqa: F401
from zoo.models import lstm  # noqa: F401
from zoo.models import rbm  # noqa: F401
from zoo.models import sets  # noqa: F401
from zoo.models import som  # noqa: F401
from zoo.models import transformer  # noqa: F401
