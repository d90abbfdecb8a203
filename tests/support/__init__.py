"""Helpers shared by the tests: fixture machinery, LVM runners, wire clients."""
