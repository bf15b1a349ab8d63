"""Where measurements run: this machine's workers, or a cluster's."""
