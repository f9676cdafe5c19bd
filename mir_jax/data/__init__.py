"""Data: annotation readers/writers, vocabularies, dataset folders, input pipeline."""
