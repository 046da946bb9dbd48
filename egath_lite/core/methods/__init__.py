"""The comparison methods of the paper's table, one module each (issue 19); the registry comes with the ``methods`` branch."""
