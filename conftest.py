"""Fixtures shared by every test folder in the workspace."""

pytest_plugins = ["novitrac_kit.testing.fixtures"]
