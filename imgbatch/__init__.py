"""imgbatch: a CSV of products and image URLs in; compressed, hosted JPEGs and an output CSV out."""

__version__ = "0.1.0"
