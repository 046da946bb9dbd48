"""Every figure the notebooks show, one module per pipeline stage."""
