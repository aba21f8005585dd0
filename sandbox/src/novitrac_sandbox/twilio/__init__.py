"""The twilio stand-in."""
