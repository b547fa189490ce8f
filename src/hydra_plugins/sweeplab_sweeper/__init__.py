"""Hydra instantiates sweepers only from the ``hydra_plugins`` package: sweeplab's Optuna sweeper is named
here, and lives in sweeplab/sweeps/optuna_sweeper.py (imported without Optuna, so every Hydra start stays
fast)."""

from sweeplab.sweeps import optuna_sweeper as _impl


class OptunaSweeper(_impl.OptunaSweeper):
    __doc__ = _impl.OptunaSweeper.__doc__


def register() -> None:
    """Hydra finds plugins by listing ``hydra_plugins``' directories, which an editable install (a path hook,
    not a directory) hides: sweeplab.conf registers the sweeper itself when Hydra reads it."""
    from hydra.core.plugins import Plugins

    Plugins.instance().register(OptunaSweeper)
