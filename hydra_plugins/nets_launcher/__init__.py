"""Hydra plugins of nets: the ``nets`` launcher and sweeper (see ``nets_launcher``)."""
