"""Multi-modal video search and recommendation on MSR-VTT."""
