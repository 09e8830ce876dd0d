"""crmsync — bidirectional opportunity sync."""

__version__ = "0.1.0"
