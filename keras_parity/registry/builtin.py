"""The built-in models: the package keras_parity.models and the registry built from its table.

The model files, their table (registry.py) and their measured noise (noise.json) are data the
repository keeps in its top-level models/ folder, beside golden/, where people add a model.
They are one package, keras_parity.models, under that one name everywhere: the wheel and the
container images place the folder at keras_parity/models (pyproject.toml's package-dir,
run/images.py), and in a checkout `models_package` binds the name to the folder. A model file
is thus never a second module (models/__init__.py refuses to import as `models`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from types import ModuleType

from keras_parity import paths
from keras_parity.registry import noise
from keras_parity.registry.spec import Registry

PACKAGE = "keras_parity.models"


def models_package() -> ModuleType:
    """The package keras_parity.models, bound to paths.MODELS on first use in this process."""
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    spec = importlib.util.spec_from_file_location(
        PACKAGE, paths.MODELS / "__init__.py", submodule_search_locations=[str(paths.MODELS)]
    )
    if spec is None or spec.loader is None:  # a file no import loader reads
        raise ImportError(f"{paths.MODELS / '__init__.py'} cannot be loaded as {PACKAGE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PACKAGE]
        raise
    vars(sys.modules["keras_parity"])["models"] = module  # as an import of a subpackage sets it
    return module


def model_module(name: str) -> ModuleType:
    """A built-in model's module by its spec's name ('keras_parity.models.linear')."""
    models_package()
    return importlib.import_module(name)


@functools.cache
def builtin_registry() -> Registry:
    """The built-in models with their measured noise; read-only, so one per process serves all."""
    table = model_module(f"{PACKAGE}.registry")
    return Registry(table.builtin_models(), noise.load())
