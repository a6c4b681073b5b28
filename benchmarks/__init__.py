"""Side-by-side benchmarks of the rnnedge runtime against PyTorch and ONNX Runtime (not timed tests)."""
