from archsearch.objectives import colorization, jigsaw, rotation, segmentation, supervised  # noqa: F401  (registers)
from archsearch.objectives.base import OBJECTIVES, Objective, batch_seed, create_objective, list_objectives

__all__ = ["OBJECTIVES", "Objective", "batch_seed", "create_objective", "list_objectives"]
