"""ONNX in: the mapper behind export/from_onnx.py, split by concern (values and folding, glue, recurrent nodes, heads,
the proof)."""
