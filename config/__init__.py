"""The bundled default policy (`default.toml`), installed as the package `touchflow_config`."""
