"""The exercises of each notebook: one module per notebook, imported on first use by ``check``.

A module ``<module>.py`` opens with the docstring "Exercises of notebook NN, <title>: ..." and
holds ``EXERCISES: dict[str, check.Exercise]``; the notebook checks an answer with
``check.exercise("<module>.<name>", answer)``. Each module keeps its fixed inputs (the case
generators) and the references that exist only for the exercise; references that are library
functions stay in the library.

tour (00), gan (01), dcgan (02), losses (03), grads (04), tricks (05), clinic (06), eval (07),
monitor (08), hpo (09), vae (10), vae_tips (11).
"""
