"""The stripe stand-in."""
