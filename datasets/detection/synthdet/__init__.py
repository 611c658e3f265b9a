"""synthdet: the embedded synthetic world for video object detection."""
