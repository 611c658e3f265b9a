"""synthcity: a procedural street world with dense labels, encoded to real H.264."""
