"""Simulated patients and devices producing plausible vitals (demo and load tests)."""
