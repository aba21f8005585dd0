"""``/v1/ws``: live events pushed to the dashboard's WebSockets, by organisation."""
