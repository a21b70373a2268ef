"""Neural networks from scikit-learn to PyTorch: LendingClub loans and MNIST."""
