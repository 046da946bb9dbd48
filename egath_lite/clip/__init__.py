"""CLIP: open_clip weights (tags, checkpoint files), the offline tiny CLIP's training, encoding, the image pipeline,
sharded extraction and the one autocast helper.
"""
