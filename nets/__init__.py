"""nets: find out why a network's loss falls but its accuracy does not.

The core (this package's top-level modules except ``tracking`` and ``app``) uses numpy
only; Hydra and MLflow live behind ``nets.app`` and ``nets.tracking``.
"""

__version__ = "0.1.0"
