"""Lowerings, one module per ONNX op family; importing this package registers them all (every module in this
folder is imported: adding a family is adding a file)."""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
