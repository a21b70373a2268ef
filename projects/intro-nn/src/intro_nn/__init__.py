"""Neural networks from scikit-learn to PyTorch: LendingClub loans and MNIST."""

PROJECT = "intro-nn"  # its checkpoints' tag, its runs and caches folder name
