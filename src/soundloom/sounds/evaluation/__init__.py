"""soundloom.sounds.evaluation: metrics and reports."""
