"""The Hydra front door: ``python -m mantile`` (app, job, callbacks) and ``mantile.cli.summarize``.

The only package that imports Hydra; everything below it (analysis, engine, serving, costs, specs)
takes plain Python values."""
