"""The smtp stand-in."""
