"""The pinned stack imports together: rliable (through arch) needs pandas < 3; Minari must be >= 0.5.4."""

from importlib.metadata import version

from packaging.version import Version


def test_rliable_imports_with_the_pinned_pandas():
    import pandas
    from rliable import library, metrics, plot_utils  # noqa: F401  (arch breaks here under pandas 3)

    assert Version(pandas.__version__) < Version("3")
    assert callable(library.get_interval_estimates)


def test_minari_torch_gymnasium_versions():
    import gymnasium
    import minari
    import torch

    assert Version(minari.__version__) >= Version("0.5.4")
    assert torch.__version__.startswith("2.13.0")
    assert Version(gymnasium.__version__) >= Version("1.1")
    assert Version(version("optuna")) >= Version("4.9")
    env = gymnasium.make("Hopper-v5")  # MuJoCo is installed and the v5 tasks exist
    obs, _ = env.reset(seed=0)
    assert obs.shape == (11,)
