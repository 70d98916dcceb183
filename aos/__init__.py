"""AOS: an operating system for agent worlds, on Cap'n Proto RPC."""

__version__ = "0.1.0"
