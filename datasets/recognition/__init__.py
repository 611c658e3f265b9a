"""Recognition datasets: the embedded synthetic world ``synthaction`` and loaders for
ActivityNet, FCVID, Mini-Kinetics and Something-Something V1/V2 (class and split lists, frame
sampling). Imports the harness, ``vidbench.datasets.video`` and ``vidbench.datasets.scenery``;
never another task's folder."""
