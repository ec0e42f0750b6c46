"""scnet: experiment orchestrator for short-circuit (SC) networks and gradient-flow research."""

__version__ = "0.1.0"
