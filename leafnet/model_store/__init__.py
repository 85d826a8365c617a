"""Trained models as files: finding them in the results folder, sharing them as archives, and
exporting them to ONNX."""
