"""soundloom.models"""
