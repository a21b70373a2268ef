"""A decoder-only transformer trained on Jane Austen's eight works."""
