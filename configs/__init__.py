"""The shipped configuration profiles (YAML): `cpu-demo`, `gpu-128`. Loaded by name with
`common.config.load_config("cpu-demo")`; a path to another YAML file works too."""
