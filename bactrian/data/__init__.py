"""Data files of the library (languages, templates), loaded with importlib.resources."""
