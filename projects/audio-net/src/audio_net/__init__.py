"""GTZAN music-genre classification: log-mel spectrograms and a fine-tuned ResNet18."""

PROJECT = "audio-net"  # its checkpoints' tag, its runs and caches folder name
