"""Entry points, benchmarks and their shared helpers; run each as ``python experiments/NAME.py``.

A regular package (not a namespace one), so ``experiments.benchmarking`` resolves to this folder
even where another installed distribution ships a top-level ``experiments``.
"""
