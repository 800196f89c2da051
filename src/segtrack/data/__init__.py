"""Data generation: deterministic synthetic videos with exact masks (``synthetic``), training clips
from photographs (``static``, ``lucid``) and held-out multi-object clips (``multi``)."""
