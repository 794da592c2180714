"""What the vertebra model sees, in numbers (kept apart so model code imports no image I/O)."""

WORK_SPACING = (3.0, 1.5, 1.5)  # working grid: L-R across slices, A-P, S-I (mm)
SLICE_MULTIPLE = 16  # in-plane sizes padded to a multiple of this (four poolings of the UNet)
MIN_INPLANE = 64  # smallest in-plane grid (96 mm): four poolings must leave more than one pixel
IN_SLICES = 3  # neighbouring sagittal slices given to the network as channels (2.5-D)
PATCH = (192, 192)  # training patch: 288 mm x 288 mm, enough to see several vertebrae and the sacrum
