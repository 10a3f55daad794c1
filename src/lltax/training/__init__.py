"""Training: the loop on one grid cell and seed (``loop``), its SGD, and a model's train/eval mode."""
