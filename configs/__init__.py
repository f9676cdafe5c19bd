"""Experiment configs: one Python file each, ``get_config(arg) -> ConfigDict``."""
