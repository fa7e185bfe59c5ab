"""Probe kinds (one module each) and log sources; data in, data out, no prometheus code."""
