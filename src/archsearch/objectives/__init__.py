from archsearch.objectives import segmentation, supervised  # noqa: F401  (registers)
from archsearch.objectives.base import OBJECTIVES, Objective, create_objective, list_objectives

__all__ = ["OBJECTIVES", "Objective", "create_objective", "list_objectives"]
