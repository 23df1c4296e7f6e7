"""soundloom.eval: metrics and reports."""
