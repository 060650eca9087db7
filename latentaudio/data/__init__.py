"""Audio folders to training batches: scanning, metadata, crops, the demo dataset, latent shards."""
