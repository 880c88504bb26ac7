"""Side-by-side benchmarks of the exporter against the simulator.

Run ``python -m benchmarks --help``. Every contender runs in its own fresh process and the
simulator in another one, so each process's peak RSS and CPU time belong to one contender.
Speed goals live here as printed targets, never as timed tests.
"""
