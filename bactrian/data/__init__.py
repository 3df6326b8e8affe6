"""Data files of the library, loaded with importlib.resources: languages, base models, and the demo adapters
(``adapters/<base>/<name>/``, built by scripts/build_demo_adapters.sh; found by ``bactrian.adapters``)."""
