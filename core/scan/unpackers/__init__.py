"""Decoders for the formats core/scan/unpack.py looks into, one module per format family."""
