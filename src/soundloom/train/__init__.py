"""soundloom.train"""
