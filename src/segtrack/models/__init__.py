"""Neural network models of segtrack: pretrained feature backbones (``models.backbones``).

The learned trackers (RTS/LWL seed 001 ch. 5, OSVOS / MaskTrack seeds 000 and 002, SiamMask
seed 004, pixel-wise ConvLSTM tracking seed 003) build on these encoders.
"""

from segtrack.models.backbones import EfficientNetLite, ResNet50, build_backbone

__all__ = ["EfficientNetLite", "ResNet50", "build_backbone"]
