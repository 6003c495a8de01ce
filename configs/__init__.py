"""ml_collections config files, one per experiment (`--config=configs/<name>.py`)."""
