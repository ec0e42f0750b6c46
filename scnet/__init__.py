"""scnet: experiment orchestrator for short-circuit (SC) networks and gradient-flow research."""

from scnet.utils.resolvers import register as _register_resolvers

__version__ = "0.1.0"

_register_resolvers()  # conf/config.yaml's run name uses ${sc_tag:${sc}}
