"""Reusable pieces of the KMNIST LeNet project, one job per file.

train.py and predict.py read top to bottom like the tutorial; the details
(model, data, checkpoints, plots, device choice, ...) live here.
"""
