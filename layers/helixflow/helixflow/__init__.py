"""helixflow: a two-phase, event-driven DNA sequencing pipeline."""

__version__ = "0.1.0"
