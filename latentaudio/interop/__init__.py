"""Other formats' checkpoints in and out: one module per format, its mapping tables as data.

Architecture differences are options of our one VAE and DiT, never a second network.
"""
