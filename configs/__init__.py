"""The shipped configs, installed as `mtrec.configs` (package data).

Read them with `importlib.resources.files("mtrec.configs")`; the pipelines'
are found by name with `mtrec.pipelines.config_path("census", quick=True)`.
"""
