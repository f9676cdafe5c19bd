"""Training system: optimizers, state, the jitted data-parallel loop, checkpoints, writers.

``experiment.train_and_evaluate(config, workdir)`` is the entry point that
``experiments/main.py`` calls; ``loop.train`` is the generic loop underneath.
"""
