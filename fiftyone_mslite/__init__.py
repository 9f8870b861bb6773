"""MindSpore Lite image classifiers as first-class FiftyOne models."""

__version__ = "0.1.0"
