"""soundloom.stream"""
