"""Detection datasets: the box-annotated video source, the embedded synthetic world
``synthdet`` and the ImageNet VID loader (VID + DET) in its official layout. Imports the
harness, ``vidbench.datasets.video`` and ``vidbench.datasets.scenery``; never another task's
folder."""
