"""Novitrac notifications."""
