"""NIMA training, evaluation, export and scoring on the built `ava` dataset."""
