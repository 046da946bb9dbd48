"""The paper, and only the paper: EGATH's label graph, label embeddings, models, losses and training epoch.

Imports torch, numpy and torch_geometric only (a test checks it). Read it in this order:
``label_graph`` → ``label_embeddings`` → ``models`` → ``losses`` → ``train``; ``lsh`` is the untrained baseline.
"""
