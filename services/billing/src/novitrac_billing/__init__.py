"""Novitrac billing."""
