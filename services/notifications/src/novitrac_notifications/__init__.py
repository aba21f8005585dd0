"""novitrac_notifications."""
