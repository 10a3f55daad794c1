"""Phase classification (``classify``, Yang et al. 2021 Table 1), the statistics it rests on
(``statistics``), the paper's advice, one cell's diagnosis, and the paper's published results."""
