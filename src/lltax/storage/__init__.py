"""Files: atomic writes and the results lock (``atomic_files``), checkpoints, checkpoints trained
elsewhere (``foreign_checkpoints``, ``safetensors_files``) and content checksums (``checksums``)."""
