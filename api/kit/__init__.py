"""Small helpers that several features share (one home each)."""
