"""Motion sources and the warp they feed, shared by segmentation (prop, interp-mv) and
detection (DFF): codec block vectors, DFF's FlowNet, OpenCV's DIS and torchvision's RAFT all
return one displacement field on the feature grid, and ``warp`` moves features along it.
Imports the harness, ``methods.common`` and the video/codec layer, never a task folder."""
