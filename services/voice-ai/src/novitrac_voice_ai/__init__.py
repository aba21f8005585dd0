"""Novitrac voice AI."""
