"""Reading mail: MIME parsing, headers, charsets, HTML to text, mbox files. Pure functions over bytes; imports only ``shared.core``."""
