"""Data as tensors: a grid cell's data (``cells``), the loaders of each dataset, MNIST-1D's cache,
the generated language pair, parallel corpora, sequence-to-sequence conventions, augmentation."""
