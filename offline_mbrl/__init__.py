"""offline-mbrl: an offline model-based RL benchmarking suite.

Read `algorithms/mopo.py` first and follow its imports; the data flow is described in the README.
"""

__version__ = "0.1.0"
