"""Soundscapes: an endless bed (streams) with generated events (sounds) placed in time and space, steered by a mood."""
