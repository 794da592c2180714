"""The vertebra model (issue 4): segmentation of bony structures, discs, canal and cord on sagittal
slices, with a per-voxel vertebra-level head that feeds the labelling decoder."""
