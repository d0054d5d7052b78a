"""DataModules from a YAML file (LightningCLI's ``class_path`` / ``init_args`` format), for the
commands that take a data set without a whole training config (``extract-logits``,
``make-shards``). A YAML is data: it may name only the package's own DataModules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def datamodule_classes() -> dict[str, type]:
    """What a data YAML's ``class_path`` may name: the package's own DataModules, by short
    name (``ImageNetDataModule``) or full path (``assembled_lightning.data.ImageNetDataModule``,
    ``assembled_lightning.data.datamodules.ImageNetDataModule``). Nothing else is imported: a
    YAML is data, and importing an arbitrary module already runs its code."""
    import lightning as L

    from .. import data

    classes: dict[str, type] = {}
    for name in data.__all__:
        if not name.endswith("DataModule") or name == "ImageDataModule":  # the abstract base
            continue
        data_class = getattr(data, name)
        if isinstance(data_class, type) and issubclass(data_class, L.LightningDataModule):
            for spelling in (name, f"{data.__name__}.{name}", f"{data_class.__module__}.{name}"):
                classes[spelling] = data_class
    return classes


def load_datamodule(path: str) -> Any:
    """Instantiate ``class_path`` with ``init_args`` from a YAML file (LightningCLI's format,
    or a whole ``fit`` config with a ``data:`` section); only our DataModules are accepted."""
    import yaml

    try:
        spec = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from error
    if isinstance(spec, dict) and "data" in spec and "class_path" not in spec:
        spec = spec["data"]
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: expected a mapping with class_path and init_args")
    class_path, init_args = spec.get("class_path"), spec.get("init_args") or {}
    classes = datamodule_classes()
    if not isinstance(class_path, str) or class_path not in classes:
        short_names = sorted(name for name in classes if "." not in name)
        raise ValueError(
            f"{path}: class_path {class_path!r} is not one of this package's DataModules. A "
            "data YAML may name only these, by short name or full path (e.g. "
            f"assembled_lightning.data.ImageNetDataModule): {', '.join(short_names)}. For a "
            "DataModule of your own, call extract_teacher_logits / write_shards from Python"
        )
    if not isinstance(init_args, dict) or not all(isinstance(key, str) for key in init_args):
        raise ValueError(f"{path}: init_args must map option names to values")
    return classes[class_path](**init_args)
