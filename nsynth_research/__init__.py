"""Experiment-tracked search for the best CNN that classifies NSynth instrument families."""

__version__ = "0.1.0"
