"""Novitrac auth."""
