"""Top-level pytest configuration shared by tests/ and benchmarks/."""
