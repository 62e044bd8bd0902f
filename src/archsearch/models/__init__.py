"""Evaluation networks: stand-alone models built from a found architecture, trained from scratch."""
from archsearch.models import darts  # noqa: F401  (registers the DARTS networks)
from archsearch.models.base import MODELS, ModelFamily, create_family, list_models

__all__ = ["MODELS", "ModelFamily", "create_family", "list_models"]
