"""cosim: hardware-software co-design simulator and cost/energy modeler.

Public API entry points are imported lazily so that `import cosim` (and the CLI) start fast.
"""

__version__ = "0.1.0"
