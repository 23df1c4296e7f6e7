"""soundloom.eval"""
