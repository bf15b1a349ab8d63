"""The morning review in a browser: `autoresearch serve` (live, read-only) and `report --html` (the same pages)."""
