"""The machinery around ``core``: configuration and variants, validation, artifacts, stages (keys digest config,
inputs and the core source they run), runs, the notebooks' setup call, one step per stage, and the training engine.
"""
