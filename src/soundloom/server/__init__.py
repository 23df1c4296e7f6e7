"""soundloom.server"""
