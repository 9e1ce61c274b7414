"""Pictures of shapes: the CPU ray-cast renderer and the gallery image."""
