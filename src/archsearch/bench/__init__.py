"""Benchmarks behind `archsearch bench`: the search step (search.py) and the training loop (train.py)."""
