"""novitrac_kit."""
