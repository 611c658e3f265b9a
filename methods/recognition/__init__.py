"""Video recognition (seed 002): the AdaFocus / AdaFocus+ networks and the TSM family, their
policies, three-stage training, ImageNet initialisation, training clips and FLOP accounting,
and the methods ``adafocus``, ``adafocus+``, ``adafocus-tsm``, ``tsm``, ``tsm+``, ``r50-avg``,
``r50-gru``. Imports the harness and ``methods.common``; never another task's folder."""
