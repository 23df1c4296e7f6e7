"""HTTP face of the stream engine: a FastAPI app serving endless streams live."""
