"""autoresearch: a git-native harness for overnight research on one file and one metric."""

__version__ = "0.1.0"
