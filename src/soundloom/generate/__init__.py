"""soundloom.generate"""
