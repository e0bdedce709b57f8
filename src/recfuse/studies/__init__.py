"""Studies: thin scripts over the library, each answering one paper's question on real data."""
