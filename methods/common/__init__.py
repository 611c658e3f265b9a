"""Network parts that more than one task builds: deformable convolution, torchvision's
bottleneck with another expansion, reading weights files, and where a recipe trains. Imports
only the harness."""
