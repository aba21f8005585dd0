"""Novitrac API gateway."""
