"""A decoder-only transformer trained on Jane Austen's eight works."""

PROJECT = "austen-net"  # its checkpoints' tag, its runs and caches folder name
