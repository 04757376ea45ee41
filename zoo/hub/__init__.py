"""Pretrained hub: publish, download, verify, cache and load weights.

A hub is a folder with an `index.json` and artifact files. It can be a
local folder, a `file://` URL, an `http(s)://` URL or any path that
`tf.io.gfile` reads (`gs://...`). The index records, per model and weights
tag, each file's relative path, sha256 and size, the data set, split and
metrics, the `zoo train` command that reproduces it, the Keras and
TensorFlow versions and the license of the weights.

Local hubs are read in place. Remote hubs are downloaded into the cache
(`ZOO_CACHE`, else `$KERAS_HOME/zoo`, else `~/.keras/zoo`) through a
temporary file that is checked against the index and then renamed into
place. No file is loaded before its sha256 and size match the index, and
`.keras` files load with Keras' safe mode.

The modules of this package, by concept: `_index` (locations, settings,
errors, index format), `_download` (verification and the cache),
`_loading` (models and their metrics), `_archive` (SavedModel archives),
`_publishing` (publish, prefetch, rebuild) and `_cache` (maintenance).

Example:

```python
import zoo

model = zoo.get_model("cnn", weights="digits")
```
"""

from zoo.hub._archive import extract_saved_model
from zoo.hub._archive import safe_extract
from zoo.hub._cache import cache_entries
from zoo.hub._cache import prune_cache
from zoo.hub._cache import verify_cache
from zoo.hub._download import download
from zoo.hub._download import fetch_file
from zoo.hub._download import sha256_file
from zoo.hub._download import verify_file
from zoo.hub._index import DEFAULT_LICENSE
from zoo.hub._index import FILE_KINDS
from zoo.hub._index import FORMAT_VERSION
from zoo.hub._index import HUB_RECORD_NAME
from zoo.hub._index import INDEX_NAME
from zoo.hub._index import LOCK_SUFFIX
from zoo.hub._index import PACKAGE_HUB
from zoo.hub._index import RECIPES_PATH
from zoo.hub._index import TEMPORARY_PREFIX
from zoo.hub._index import ChecksumError
from zoo.hub._index import Hub
from zoo.hub._index import HubError
from zoo.hub._index import OfflineError
from zoo.hub._index import cache_dir
from zoo.hub._index import check_index
from zoo.hub._index import check_relative_path
from zoo.hub._index import default_hub
from zoo.hub._index import get_entry
from zoo.hub._index import is_offline
from zoo.hub._index import read_index
from zoo.hub._index import resolve_hub
from zoo.hub._index import write_json_atomic
from zoo.hub._loading import load_pretrained
from zoo.hub._loading import measure
from zoo.hub._loading import measure_entry
from zoo.hub._publishing import parse_selection
from zoo.hub._publishing import prefetch
from zoo.hub._publishing import publish
from zoo.hub._publishing import read_recipes
from zoo.hub._publishing import rebuild
from zoo.hub._publishing import train_command

__all__ = [
    "DEFAULT_LICENSE",
    "FILE_KINDS",
    "FORMAT_VERSION",
    "HUB_RECORD_NAME",
    "INDEX_NAME",
    "LOCK_SUFFIX",
    "PACKAGE_HUB",
    "RECIPES_PATH",
    "TEMPORARY_PREFIX",
    "ChecksumError",
    "Hub",
    "HubError",
    "OfflineError",
    "cache_dir",
    "cache_entries",
    "check_index",
    "check_relative_path",
    "default_hub",
    "download",
    "extract_saved_model",
    "fetch_file",
    "get_entry",
    "is_offline",
    "load_pretrained",
    "measure",
    "measure_entry",
    "parse_selection",
    "prefetch",
    "prune_cache",
    "publish",
    "read_index",
    "read_recipes",
    "rebuild",
    "resolve_hub",
    "safe_extract",
    "sha256_file",
    "train_command",
    "verify_cache",
    "verify_file",
    "write_json_atomic",
]
