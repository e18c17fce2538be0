"""Edge station: the sorter core, its drivers and the shell that wires them."""
