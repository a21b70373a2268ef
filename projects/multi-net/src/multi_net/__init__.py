"""Multi-modal video search and recommendation on MSR-VTT."""

PROJECT = "multi-net"  # its checkpoints' tag, its runs and caches folder name
