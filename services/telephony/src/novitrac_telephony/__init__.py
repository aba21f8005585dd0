"""novitrac_telephony."""
