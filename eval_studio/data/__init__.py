"""Small data files of the studio that we wrote ourselves (reference numbers with their citation)."""
