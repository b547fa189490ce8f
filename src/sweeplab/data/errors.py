class DataError(ValueError):
    """Bad input data: the message is one line and names the file (and line) at fault."""
