"""Bridges to other tools: the TraX protocol of the VOT toolkit (``integrations.trax``)."""
