"""PSLA (seed 001) as plain modules around any per-frame network: the attention kinds of its
ablations (PSLA, Nonlocal, MatchTrans, DensePSLA), RFU, DenseFT with its Transform Net, and
their training with the paper's key sampling. Shared by detection's ``psla`` and segmentation's
``psla-seg``; imports only the harness and ``methods.common``."""
