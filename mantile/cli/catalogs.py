"""Command-line hooks for models and hardware outside the package: ``model=`` given a HuggingFace
config.json, a model directory or a hub id in the local hub cache (single runs and ``-m`` sweeps), and
the user catalogs of ``MANTILE_CATALOG`` (or ``catalog=dir1:dir2`` on the command line).

Hydra picks ``model=`` among the files of its search path, so each local config is imported
(``specs.hf``), written as a model file into a fresh folder, and that folder and the user catalogs are
put on Hydra's search path (``hydra.searchpath``) before Hydra starts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

from mantile.specs.catalog import CATALOG_ENV, ids, user_catalogs
from mantile.specs.hf import config_path, model_id_of, spec_dict


def _local_model(value: str, folder: Path) -> str:
    """The model id ``value`` stands for: a catalog id unchanged, a local HF config written to
    ``folder/model/<id>.yaml``."""
    if value in ids("model"):
        return value
    path = config_path(value)
    if path is None:
        return value
    import json

    model_id = model_id_of(path)
    if model_id in ids("model"):  # a catalog id of the same name would shadow the imported file
        model_id = f"hf_{model_id}"
    data = spec_dict(json.loads(path.read_text()), model_id, str(path))
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
    data["source"] = f"{path} (imported HuggingFace config)"
    (folder / "model").mkdir(parents=True, exist_ok=True)
    (folder / "model" / f"{model_id}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return model_id


def rewrite(args: list[str]) -> list[str]:
    """Command-line overrides with local model configs and user catalogs made visible to Hydra."""
    out, folder, roots = [], Path(tempfile.mkdtemp(prefix="mantile-models-")), []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key == "catalog":
            os.environ[CATALOG_ENV] = value
            continue
        if sep and key == "model":
            arg = "model=" + ",".join(_local_model(v, folder) for v in value.split(","))
        out.append(arg)
    if (folder / "model").is_dir():  # the imported files are a user catalog of this process too
        os.environ[CATALOG_ENV] = os.pathsep.join([str(folder), *map(str, user_catalogs())])
    roots += user_catalogs()
    if roots and not any(a.startswith("hydra.searchpath=") for a in out):
        out.append("hydra.searchpath=[" + ",".join(f"file://{p.resolve()}" for p in roots) + "]")
    return out
