"""Backend plugins of pgdbench. Each module is one backend and reads on its own.

The core never imports these modules; it finds them through the entry points
declared in pyproject.toml, exactly as it finds a third-party plugin.
"""
