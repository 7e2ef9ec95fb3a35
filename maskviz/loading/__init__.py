"""Load a Keras model file safely, with one-line errors.

``load_model(path)`` reads ``.keras`` archives (and ``.h5`` files where Keras reads them) with
``safe_mode=True`` by default. In safe mode a model file imports and runs nothing:

- every ``Lambda`` layer is refused, whatever its function (stored bytecode, or a Keras API
  function such as ``keras.config.set_backend``), and so is any stored lambda;
- every layer that loads outside code or data is refused: ``TFSMLayer`` (a SavedModel graph)
  and any config string that names a path or URL outside the archive (a ``StringLookup``
  vocabulary file, ``keras.utils.get_file`` origins);
- functions named from non-modelling Keras namespaces (``keras.config``, ``keras.utils``,
  ``keras.datasets``, ...) are refused;
- the only modules imported because the file names them are the Keras ecosystem packages of
  ``ALLOWED_IMPORTS`` (imported only if installed), plus those the caller adds with
  ``allow_imports=`` (``--allow-import MODULE``);
- the current folder and ``''`` are removed from ``sys.path`` while the file is loaded, so a
  ``.py`` file next to the model is never imported by accident (``python -m maskviz`` too).

These checks are maskviz's own and run before Keras sees the file, so they hold even when the
process has called ``keras.config.enable_unsafe_deserialization()``. ``--unsafe``
(``unsafe=True``) lifts them for a file you trust, and also imports the installed packages the
file names.

Reading is bounded and checked before Keras opens anything: only regular files (never a FIFO
or a device), zip members checked for encryption, compression method, sizes, names and CRC,
JSON parsed with a nesting limit, ``.h5`` attributes checked for type and encoding.

Custom classes come from ``--custom-objects`` (a ``.py`` file or an importable module, which
runs the user's code because the user named it; ``load_custom_objects``) and from maskviz's own
registered layers (packages ``maskviz`` and ``maskviz_samples``).

Every failure raises ``MaskvizError`` with one line: what happened, what was expected, how to
fix it. Text quoted from the file or the path has its control characters escaped.
"""

from maskviz.loading.custom import CustomObjectsSpec, load_custom_objects
from maskviz.loading.imports import ALLOWED_IMPORTS
from maskviz.loading.loader import load_model

__all__ = ["ALLOWED_IMPORTS", "CustomObjectsSpec", "load_custom_objects", "load_model"]
