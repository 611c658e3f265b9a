"""Video object detection (seed 001): the R-FCN detector and its training, the methods
``rfcn``, ``dff`` and ``psla`` (PSLA's modules live in ``methods.psla``), and the paper-scale
parameter and multiply-add accounting of Table 1. Imports the harness, the shared layers
(``common``, ``motion``, ``psla``) and the video/codec layer; never the segmentation or
recognition folders."""
