"""novitrac_contracts."""
