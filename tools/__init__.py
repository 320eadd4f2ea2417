"""Repository tools apart from the library: conformance checks against the golden recordings,
statistics checks and golden-data maintenance. Run them from the repository root, e.g.
``python -m tools.arena_golden --all``; they are not installed with the package.
"""
