"""Serving codes: single-query search, faiss indexes, Milvus export."""
