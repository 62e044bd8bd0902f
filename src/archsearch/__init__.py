"""archsearch: one-shot and differentiable neural architecture search."""

__version__ = "0.1.0"
