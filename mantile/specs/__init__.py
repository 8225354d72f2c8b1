"""Typed, validated descriptions of what Mantile evaluates: model, hardware, plan, workload."""

from mantile.specs.catalog import (
    conf_dir,
    ids,
    load_efficiency,
    load_hardware,
    load_model,
    load_serving,
)
from mantile.specs.dtypes import BYTES_PER_ELEMENT, DTYPES
from mantile.specs.errors import SpecError
from mantile.specs.hardware import EfficiencyProfile, HardwareSpec
from mantile.specs.model import ModelSpec
from mantile.specs.serving import ServingProfile
from mantile.specs.stack import KernelStack

__all__ = [
    "BYTES_PER_ELEMENT", "DTYPES", "EfficiencyProfile", "HardwareSpec", "KernelStack", "ModelSpec", "ServingProfile",
    "SpecError", "conf_dir", "ids", "load_efficiency", "load_hardware", "load_model", "load_serving",
]
