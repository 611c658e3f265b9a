"""synthaction: a procedural recognition world whose class is the look of one small moving
object, encoded to real H.264."""
