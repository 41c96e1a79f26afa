"""verl on Ray: the export of a curriculum to verl's trainer and its launch."""
