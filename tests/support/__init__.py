"""Shared test support: real servers and databases the suite starts itself."""
