"""Figures of a run: anytime architecture weights, their entropy, and the derived cells."""
from archsearch.viz.cells import draw_cell, plot_genotype
from archsearch.viz.history import edge_entropies, load_history
from archsearch.viz.report import plot_run
from archsearch.viz.weights import plot_anytime_weights, plot_entropy

__all__ = ["draw_cell", "edge_entropies", "load_history", "plot_anytime_weights", "plot_entropy",
           "plot_genotype", "plot_run"]
