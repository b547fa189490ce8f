"""sweeplab's Hydra config groups. Importing the package (Hydra does, to read it) registers the schemas the
YAMLs list in their defaults (sweeplab.config.schema), the resolvers the run and sweep dirs use, and the
sweeper hydra/sweeper/optuna.yaml names."""

import sweeplab.config.resolvers
import sweeplab.config.schema  # noqa: F401
from hydra_plugins.sweeplab_sweeper import register

register()
