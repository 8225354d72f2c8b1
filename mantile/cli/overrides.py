"""The command line before Hydra sees it: ``--help``, unknown keys, ``range(...)`` lists, one error format.

Every malformed override (an unknown key, ``+`` or not; a bad value; an unknown id; a parse error; a
job sweep without ``-m``) stops here, with or without ``-m``, as ``mantile: error: ...`` on stderr and
exit code 2, naming the closest valid key or id. Accepted spellings are normalized for Hydra:

- ``key='range(1,257,32)'`` on a sweep key becomes the list ``[1,33,...,225]`` (a grid inside one
  run, like ``key='[...]'``; ``-m key=1,2`` still sweeps Hydra jobs);
- ``+key=v`` for a key the config already has becomes ``key=v`` (Hydra would refuse to add it), and
  ``efficiency=<generation>`` becomes ``+efficiency=...`` (the one group not in the defaults list).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, RangeSweep
from hydra.errors import HydraException
from omegaconf import OmegaConf

from mantile.cli.callbacks import GROUPS, check_sweep_overrides
from mantile.cli.job import EXECUTOR_KEYS
from mantile.engine.disagg import SIDE_KEYS
from mantile.engine.spec import AXES
from mantile.specs import SpecError, conf_dir

#: Hydra flags that take a value in the next argument
FLAGS_WITH_VALUE = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                    "--config-dir", "-cd", "--info", "-i", "--experimental-rerun")
#: groups of the defaults list whose options are files of conf/<group>/
ADD_ONLY_GROUPS = ("efficiency",)
#: sub-keys of sections that are not spelled out in conf/config.yaml
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "executor": EXECUTOR_KEYS,
    "study": ("name", "max_batch_size", "hardware", "serving", "dtype", "tp", "pp", "ep", "dp_attention",
              "disaggregated", "percentile", "max_devices", "top")}  # capacity's, then recommend's
#: sub-sections and their keys (disaggregated serving's sides: engine.disagg.SIDE_KEYS)
NESTED_KEYS: dict[str, tuple[str, ...]] = {"disagg.prefill": SIDE_KEYS, "disagg.decode": SIDE_KEYS}
#: sections whose contents are validated by the spec loaders (unknown fields are errors there)
FREE_SECTIONS = ("hydra", "model", "hardware", "serving", "efficiency", "experiment", "parallelism", "workload")


def _config_sections() -> dict[str, tuple[str, ...]]:
    """Top-level keys of conf/config.yaml and, for its mappings, their keys."""
    raw = OmegaConf.to_container(OmegaConf.load(conf_dir() / "config.yaml"), resolve=False)
    assert isinstance(raw, dict)
    return {str(k): tuple(str(s) for s in v) if isinstance(v, dict) else () for k, v in raw.items()
            if k != "defaults"}


def valid_keys() -> dict[str, tuple[str, ...]]:
    """Every key the command line may set: top-level key -> its valid sub-keys (() = any or none)."""
    keys: dict[str, tuple[str, ...]] = {k: () for k in (*AXES, *GROUPS, *ADD_ONLY_GROUPS, *FREE_SECTIONS)}
    keys.update(_config_sections())
    keys.update(SECTION_KEYS)
    return keys


def suggest(word: str, choices: Iterable[str], prefix: str = "") -> str:
    """'; did you mean 'batch_size'?' for the closest choice, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {prefix + close[0]!r}?" if close else ""


def check_key(key: str, value: object, keys: dict[str, tuple[str, ...]]) -> None:
    """Raise SpecError for a key the config does not have (naming the closest valid one)."""
    top, _, sub = key.replace("/", ".").partition(".")
    if top not in keys:
        raise SpecError("command line", key, value, f"unknown key{suggest(top, keys)} (valid keys: "
                        f"{', '.join(sorted(keys))}; python -m mantile --help)")
    allowed = keys[top]
    if sub and top not in FREE_SECTIONS and allowed and sub.split(".")[0] not in allowed:
        raise SpecError("command line", key, value, f"unknown key{suggest(sub, allowed, top + '.')} "
                        f"(valid keys of {top}: {', '.join(allowed)})")
    parent, _, leaf = key.replace("/", ".").rpartition(".")
    if parent in NESTED_KEYS and leaf not in NESTED_KEYS[parent]:
        raise SpecError("command line", key, value, f"unknown key{suggest(leaf, NESTED_KEYS[parent], parent + '.')} "
                        f"(valid keys of {parent}: {', '.join(NESTED_KEYS[parent])})")


def _range_list(o: Override) -> str:
    values = list(o.sweep_iterator())
    if not all(isinstance(v, int) for v in values) or not values:
        raise SpecError("command line", o.key_or_group, o.input_line, "range(start, stop[, step]) of integers "
                        "with at least one value")
    return f"{o.key_or_group}=[{','.join(str(v) for v in values)}]"


def normalize(o: Override, multirun: bool, keys: dict[str, tuple[str, ...]]) -> str:
    """Check one parsed override; return the text Hydra should get."""
    key, line = o.key_or_group, o.input_line or ""
    check_key(key, o.value() if not o.is_sweep_override() else line.partition("=")[2], keys)
    top = key.replace("/", ".").partition(".")[0]
    if isinstance(o.value(), RangeSweep) and key in AXES:
        return _range_list(o)
    if o.is_sweep_override() and not multirun:
        raise SpecError("command line", key, line.partition("=")[2],
                        f"a sweep of jobs needs -m (python -m mantile -m {line}); for a grid inside one run "
                        f"give a list: {key}='[{line.partition('=')[2]}]'")
    dotted = "." in key or "/" in key
    if o.type == OverrideType.ADD and top not in (*ADD_ONLY_GROUPS, "hydra") and (
            not dotted or top in _config_sections() or top == "executor"):
        return line[1:]  # +batch_size=8: the key exists, so Hydra must change it, not add it
    if o.type == OverrideType.CHANGE and key in ADD_ONLY_GROUPS:
        return "+" + line
    return line


def overrides_of(args: Sequence[str]) -> list[int]:
    """Positions in ``args`` of the overrides (not flags, not a flag's value)."""
    out, skip = [], False
    for i, a in enumerate(args):
        if skip:
            skip = False
        elif a.startswith("-"):
            skip = a in FLAGS_WITH_VALUE
        else:
            out.append(i)
    return out


def prepare(args: list[str], multirun: bool) -> list[str]:
    """Check every override and return the arguments for Hydra (SpecError on the first bad one)."""
    keys = valid_keys()
    parser = OverridesParser.create()
    args = list(args)
    positions = overrides_of(args)
    for i in positions:
        try:
            (o,) = parser.parse_overrides([args[i]])
        except HydraException as e:
            first = str(e).splitlines()[0]
            key, _, value = args[i].partition("=")
            raise SpecError("command line", key.lstrip("+~"), value,
                            f"cannot parse: {first} (lists: key='[1,2,4]', ranges: key='range(1,257,32)')") from None
        args[i] = normalize(o, multirun, keys)
    check_sweep_overrides([args[i] for i in positions])
    return args
