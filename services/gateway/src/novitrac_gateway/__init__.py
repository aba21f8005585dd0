"""novitrac_gateway."""
