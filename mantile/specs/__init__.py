"""Typed, validated descriptions of what Mantile evaluates: model, hardware, plan, workload."""

from mantile.specs.catalog import (
    conf_dir,
    ids,
    load_efficiency,
    load_hardware,
    load_model,
    load_stack,
)
from mantile.specs.dtypes import BYTES_PER_ELEMENT, DTYPES
from mantile.specs.errors import SpecError
from mantile.specs.hardware import EfficiencyProfile, HardwareSpec
from mantile.specs.model import ModelSpec
from mantile.specs.stack import KernelStack

__all__ = [
    "BYTES_PER_ELEMENT", "DTYPES", "EfficiencyProfile", "HardwareSpec", "KernelStack", "ModelSpec",
    "SpecError", "conf_dir", "ids", "load_efficiency", "load_hardware", "load_model", "load_stack",
]
