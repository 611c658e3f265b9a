"""Segmentation datasets: the embedded synthetic world ``synthcity`` and loaders for Cityscapes
and CamVid in their official layouts, each encoded to H.264 through the video layer. Imports
the harness, ``vidbench.datasets.video`` and ``vidbench.datasets.scenery``; never another
task's folder."""
