"""Input / output: streaming frame sources, label PNGs with the DAVIS palette, writers.

See :mod:`segtrack.io.sources`, :mod:`segtrack.io.palette` and :mod:`segtrack.io.writers`.
"""

from segtrack.io.palette import (
    colors_to_labels,
    davis_palette,
    read_label_png,
    read_mask_bytes,
    read_mask_input,
    write_label_png,
)
from segtrack.io.sources import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    FrameSource,
    list_images,
    natural_key,
    open_source,
    read_image,
)
from segtrack.io.writers import (
    BoxesWriter,
    MaskWriter,
    OverlayWriter,
    atomic_write_bytes,
    atomic_writer,
    draw_predictions,
    guard_output,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "BoxesWriter",
    "FrameSource",
    "MaskWriter",
    "OverlayWriter",
    "atomic_write_bytes",
    "atomic_writer",
    "colors_to_labels",
    "davis_palette",
    "draw_predictions",
    "guard_output",
    "list_images",
    "natural_key",
    "open_source",
    "read_image",
    "read_label_png",
    "read_mask_bytes",
    "read_mask_input",
    "write_label_png",
]
