"""Test support shared by every package's tests: real servers, found or started, never faked."""
