"""HiGeMine: hierarchical book-genre mining from blurbs and blurb-filtered reviews."""
