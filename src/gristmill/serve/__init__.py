"""Inference: batch prediction, ONNX export and int8 quantization, and the HTTP service."""
