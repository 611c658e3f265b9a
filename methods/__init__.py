"""Methods, grouped by what a reader looks for; each method sits behind the adapter of
``vidbench.api`` and is found by name through ``vidbench.registry``.

Three shared layers, then one folder per task. ``common/`` holds network parts several tasks
build (deformable convolution, the ResNet bottleneck, weights files, the training device);
``motion/`` the motion sources and the one warp that segmentation and detection share (codec
vectors, FlowNet, DIS, RAFT); ``psla/`` PSLA's attention kinds, RFU, DenseFT and their training
around any per-frame network, shared by detection's ``psla`` and segmentation's ``psla-seg``.
``segmentation/``, ``detection/`` and ``recognition/`` hold each task's networks, methods,
training and paper-scale cost. The import rule (``tests/test_layout.py`` checks it): a task
folder imports the harness (``vidbench.*`` outside methods and datasets), the shared layers
and the video/codec layer ``vidbench.datasets.video``, never another task's folder; a shared
layer imports only the harness and the layers below it (``common`` < ``motion``, ``psla``).
"""
