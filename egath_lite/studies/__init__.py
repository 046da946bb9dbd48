"""Studies around the method: the released files' forensics, the label-scarcity curve."""
