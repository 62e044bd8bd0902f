"""Evaluation networks: stand-alone models built from a found architecture, trained from scratch."""
from archsearch.models import darts, mobile, nasbench101  # noqa: F401  (registers the model families)
from archsearch.models.base import MODELS, ModelFamily, create_family, list_models, resolve_architecture

__all__ = ["MODELS", "ModelFamily", "create_family", "list_models", "resolve_architecture"]
