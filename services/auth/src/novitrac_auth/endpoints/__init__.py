"""The auth service's HTTP routes, one router per noun."""
