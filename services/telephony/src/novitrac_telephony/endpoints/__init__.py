"""Telephony's HTTP routes, one router per noun."""
