"""The files of an exported generation run: what training writes and inference reads.

Kept apart from training so that loading a run (the :class:`~soundloom.sounds.generator.Generator`)
never imports Lightning.
"""

MODEL_FILE = "model.safetensors"  # weights + fitted latent prior
CONFIG_FILE = "model.json"  # model config, run config, format version
STATS_FILE = "stats.json"  # the feature store's normalisation statistics
RUN_FORMAT_VERSION = 1
