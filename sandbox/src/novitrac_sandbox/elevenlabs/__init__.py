"""The elevenlabs stand-in."""
