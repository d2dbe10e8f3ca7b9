"""TEMPORARY shim until the network package lands."""

from chainlab.sim.network import NetworkConfig

__all__ = ["NetworkConfig"]
