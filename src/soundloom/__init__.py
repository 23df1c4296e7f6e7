"""soundloom: AI sound generation and endless music streams over one audio core."""

__version__ = "0.1.0"
