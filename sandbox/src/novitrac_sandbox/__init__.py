"""novitrac_sandbox."""
