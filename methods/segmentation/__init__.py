"""Video semantic segmentation (seed 000, and seed 001's Table 6): the DeepLab-style network
split into feature and task networks, its training recipes, weights loaders and paper-scale
cost, and the methods ``frame``, ``prop`` / ``prop-mv`` / ``prop-flow``, ``interp-mv`` and
``psla-seg``. Imports the harness, the shared layers (``common``, ``motion``, ``psla``) and the
video/codec layer; never the detection or recognition folders."""
