"""The machinery around ``core``: configuration and variants, validation, artifacts, stages (keys digest the config
fields a stage reads, its upstream keys, its inputs and a format version), runs, the notebooks' setup call, one step
per stage, and the training engine.
"""
