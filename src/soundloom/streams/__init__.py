"""soundloom.streams"""
