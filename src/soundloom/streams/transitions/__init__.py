"""Transition scorers (how well does chunk B follow chunk A?), their training and evaluation."""
