"""sweeplab's Hydra config groups. Importing the package (Hydra does, to read it) registers the schemas the
YAMLs list in their defaults (sweeplab.config.schema) and the resolvers the run and sweep dirs use."""

import sweeplab.config.resolvers
import sweeplab.config.schema  # noqa: F401
