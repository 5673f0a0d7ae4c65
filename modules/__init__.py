"""Reusable pieces of the KMNIST LeNet project, one job per file."""
