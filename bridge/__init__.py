"""Bridges from other systems' protocols to a Pulseboard gateway: ``python -m bridge.mqtt``."""
