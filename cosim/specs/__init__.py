"""Validated, frozen, SI-unit spec models and the built-in catalog."""

from cosim.specs.hardware import BYTES_PER_ELEMENT, PRECISIONS, Hardware
from cosim.specs.loader import list_slugs, load_any, load_hardware, load_workload
from cosim.specs.scenario import Parallelism, Scenario
from cosim.specs.workload import DecoderLM, VideoDiT

__all__ = [
    "BYTES_PER_ELEMENT", "PRECISIONS", "DecoderLM", "Hardware", "Parallelism", "Scenario", "VideoDiT",
    "list_slugs", "load_any", "load_hardware", "load_workload",
]
