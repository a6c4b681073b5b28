"""Mutation tests of the two file readers (runtime.artifact.read, export.vectors.read_vectors): see engine.py."""
