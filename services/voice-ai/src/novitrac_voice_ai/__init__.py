"""novitrac_voice_ai."""
