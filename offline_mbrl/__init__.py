"""offline-mbrl: an offline model-based RL benchmarking suite.

Read `algorithms/mopo.py` first and follow its imports; docs/algorithms.md describes the data flow.
`AlgorithmSpec` is the public type a researcher's own algorithm registers (docs/algorithms.md: "Add your own
algorithm").
"""

from offline_mbrl.algorithm_spec import AlgorithmSpec, LearningCheck

__all__ = ["AlgorithmSpec", "LearningCheck", "__version__"]
__version__ = "0.1.0"
