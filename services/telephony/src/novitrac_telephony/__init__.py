"""Novitrac telephony."""
