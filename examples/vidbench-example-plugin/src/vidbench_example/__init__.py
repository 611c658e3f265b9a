"""An example vidbench plug-in package: one segmentation method, ``hold-key``
(``vidbench_example.hold_key``), registered through the ``vidbench.methods`` entry-point group.

The package imports nothing here, so that listing vidbench's methods imports no network code;
the registry imports ``vidbench_example.hold_key`` when the method is first used.
"""
