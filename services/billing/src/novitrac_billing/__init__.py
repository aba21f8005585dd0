"""novitrac_billing."""
