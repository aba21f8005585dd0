"""novitrac_auth."""
