"""Reports: the paper's numbers, tables and figures built from sweep results."""
