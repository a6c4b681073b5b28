"""ONNX in: the mapper behind export/from_onnx.py, split by concern: values and folding (values.py), the walk and
the result (mapper.py), glue (glue.py), recurrent nodes (recurrent.py), unrolled RNN steps (unrolled.py), Loops
(loops.py, loop_cells.py: rewritten to RNN / GRU nodes), heads (heads.py), the proof (proof.py)."""
