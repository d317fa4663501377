"""Loading and validating medzip's configuration (configs/default.toml is the default policy)."""
from configs.schema import Config, ConfigError, Gate, load_config, medzip_home

__all__ = ["Config", "ConfigError", "Gate", "load_config", "medzip_home"]
