"""Local stand-ins for Twilio, ElevenLabs Agents, Stripe and SMTP, speaking their real protocols."""
