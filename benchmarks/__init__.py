"""segkit's benchmark scripts, as a package (not shipped in the wheel).

Each script runs as a file or as a module, from the repository root::

    python benchmarks/inference.py --quick --size 129
    python -m benchmarks.inference --quick --size 129

and imports the shared pieces as ``from benchmarks.benchutils import ...``; tests import them the same way
(``import benchmarks.dataloader``).
"""
