"""GTZAN music-genre classification: log-mel spectrograms and a fine-tuned ResNet18."""
