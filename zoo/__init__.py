"""zoo: a Keras 3 model zoo.

Importing `zoo` loads only the pure-Python registry, so listing models is
instant; TensorFlow is imported by the functions that build or train.
"""

from zoo.registry import ModelSpec
from zoo.registry import TensorRecord
from zoo.registry import UnknownModelError
from zoo.registry import get_model
from zoo.registry import get_spec
from zoo.registry import list_models
from zoo.registry import model_info
from zoo.registry import register_model

__version__ = "0.1.0"

__all__ = [
    "ModelSpec",
    "TensorRecord",
    "UnknownModelError",
    "get_model",
    "get_spec",
    "list_models",
    "model_info",
    "register_model",
]
