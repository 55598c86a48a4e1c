"""Format converters: PyTorch → ONNX export (torch_export) and the ONNX → TFLite compiler (tflite)."""
